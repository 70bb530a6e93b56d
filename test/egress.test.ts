// Traffic to destinations outside the mesh (egress) with real processes: an HTTP server and a TCP
// echo server on 127.0.0.1 that are not meshed, reached through a client sidecar as an HTTP proxy
// (absolute-form requests and CONNECT). Passed through by default and counted as outside the mesh
// (dst_mesh="false"); `mesh policy egress deny` refuses them with 403 / a refused CONNECT.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { TestMesh, waitFor } from './support/mesh.js';
import { call } from './support/http.js';
import { connectVia, echoServer, exchange } from './support/tcp.js';
import { WebSocket, WebSocketServer, type WsClient } from './support/ws.js';

describe('egress: destinations outside the mesh', () => {
  const m = new TestMesh();
  let outbound = '';
  let admin = '';
  let web: http.Server;
  let webPort = 0;
  let echo: Awaited<ReturnType<typeof echoServer>>;

  // As an HTTP_PROXY client asks: the absolute URI to the proxy, its Host agreeing.
  const viaProxy = (path: string) => call(`http://${outbound}http://127.0.0.1:${webPort}${path}`, { headers: { host: `127.0.0.1:${webPort}` } });
  const policy = async (...args: string[]) => {
    const r = await m.cli(['policy', ...args]);
    assert.equal(r.code, 0, `mesh policy ${args.join(' ')}: ${r.stderr}`);
    return r;
  };

  before(async () => {
    web = http.createServer((req, res) => res.end(`outside ${req.url}`));
    const wss = new WebSocketServer({ noServer: true });
    web.on('upgrade', (req, sock, head) => wss.handleUpgrade(req, sock, head, (ws) => ws.on('message', (d: Buffer) => ws.send(`outside ${d.toString()}`))));
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    webPort = (web.address() as AddressInfo).port;
    echo = await echoServer();
    await m.install();
    const r = await m.cli(['run', '-d', '-o', 'json', '--name', 'client', '--', process.execPath, '-e', 'setInterval(() => {}, 1 << 30)']);
    assert.equal(r.code, 0, r.stderr);
    ({ outbound, admin } = JSON.parse(r.stdout) as { outbound: string; admin: string });
  });
  after(async () => {
    await m.cleanup();
    web.close();
    await echo.close();
  });

  it('passes an HTTP request for a host outside the mesh through, counted with dst_mesh="false"', async () => {
    const r = await viaProxy('/hello');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'outside /hello');
    const metrics = (await call(`http://${admin}/metrics`)).body;
    assert.match(metrics, /request_total\{[^}]*direction="outbound",dst_service="127\.0\.0\.1",dst_mesh="false",tls="false"\} [1-9]/);
    assert.match(metrics, /response_total\{[^}]*dst_service="127\.0\.0\.1",dst_mesh="false"[^}]*status_code="200"\} [1-9]/);
  });

  it('passes a WebSocket to a host outside the mesh through, counted with dst_mesh="false"', async (t) => {
    const ws = await new Promise<WsClient>((resolve, reject) => {
      const c = new WebSocket(`ws://${outbound}/chat`, { headers: { host: `127.0.0.1:${webPort}` } });
      c.once('open', () => resolve(c));
      c.once('error', reject);
    });
    t.after(() => ws.terminate());
    const reply = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString())));
    ws.send('hello');
    assert.equal(await reply, 'outside hello');
    const metrics = (await call(`http://${admin}/metrics`)).body;
    assert.match(metrics, /response_total\{[^}]*dst_service="127\.0\.0\.1",dst_mesh="false"[^}]*status_code="101"\} 1/);
  });

  it('passes CONNECT to a TCP server outside the mesh, both ways with half-close', async () => {
    const c = await connectVia(outbound, `127.0.0.1:${echo.port}`);
    assert.equal(c.status, 200, c.head);
    const r = await exchange(c.sock, 'plain TCP out');
    assert.equal(r.data.toString(), 'plain TCP out');
    assert.equal(r.ended, true);
    const metrics = (await call(`http://${admin}/metrics`)).body;
    assert.match(metrics, /tcp_open_total\{[^}]*dst_service="127\.0\.0\.1",dst_mesh="false",tls="false",peer="dst",protocol="opaque"\} [1-9]/);
  });

  it('refuses both with mesh policy egress deny (403, a refused CONNECT), and lets them out again with allow', { timeout: 30_000 }, async () => {
    await policy('egress', 'deny');
    const denied = await waitFor('the egress deny', async () => {
      const r = await viaProxy('/denied');
      return r.status === 403 ? r : undefined;
    }, 5_000, 50);
    assert.match(String(denied!.headers['mesh-proxy-error']), /127\.0\.0\.1 is not a mesh service, and egress is denied in namespace default/);
    const c = await connectVia(outbound, `127.0.0.1:${echo.port}`);
    assert.equal(c.status, 403, c.head);
    const rest = await exchange(c.sock, 'not carried');
    assert.doesNotMatch(rest.data.toString(), /not carried/);
    const list = await m.cli(['policy', 'list']);
    assert.match(list.stdout, /default\s+allow, egress deny/);

    await policy('egress', 'allow');
    await waitFor('egress allowed again', async () => (await viaProxy('/again')).status === 200, 5_000, 50);
  });

  it('refuses an unknown egress setting in one line', async () => {
    const r = await m.cli(['policy', 'egress', 'sometimes']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^error: unknown egress setting 'sometimes' — use '.*policy egress allow' or '.*policy egress deny'\n$/);
  });
});
