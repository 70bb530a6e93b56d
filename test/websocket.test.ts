// WebSocket through two sidecars with a real client and server (the `ws` package): the client's outbound proxy opens
// an upgrade stream on mesh/1, and the app's inbound proxy runs its HTTP layers on the upgrade request (host-check,
// authorization with path rules, observe, the verified identity header) before it joins the app.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { startBed, CLIENT_ID, type Bed } from './support/hostile/bed.js';
import { makeCa, muxPeer, outbound, idOf } from './support/mux-bed.js';
import { waitFor } from './support/mesh.js';
import { WebSocket, WebSocketServer, type WsClient } from './support/ws.js';

const FORGED = 'spiffe://cluster.local/ns/default/sa/admin';
const MB = 1024 * 1024;

interface Refusal {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Opens a WebSocket to service web through the outbound proxy at `port`. */
function connect(port: number, path: string): Promise<WsClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: { host: 'web', 'mesh-client-id': FORGED }, maxPayload: 64 * MB });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req: http.ClientRequest, res: http.IncomingMessage) => reject(new Error(`refused with ${res.statusCode}`)));
  });
}

/** A WebSocket handshake that must be refused: its answer as the client saw it. */
function refused(port: number, path: string): Promise<Refusal> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: { host: 'web' } });
    ws.once('open', () => reject(new Error('opened')));
    ws.once('error', () => {});
    ws.once('unexpected-response', (_req: http.ClientRequest, res: http.IncomingMessage) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
  });
}

function next(ws: WsClient): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data: Buffer) => resolve(data));
    ws.once('close', () => reject(new Error('closed before a message')));
  });
}

function closed(ws: WsClient): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })));
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('WebSocket through two sidecars', () => {
  let bed: Bed;
  let app: http.Server;
  const seen: Array<{ url: string; raw: string[] }> = [];
  const serverCloses: number[] = [];

  before(async () => {
    const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * MB });
    app = http.createServer((_req, res) => res.end('not a WebSocket request\n'));
    app.on('upgrade', (req: http.IncomingMessage, sock: net.Socket, head: Buffer) => {
      seen.push({ url: req.url!, raw: req.rawHeaders });
      if (req.url!.startsWith('/ok/missing')) {
        sock.end('HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nno such room\n');
        return;
      }
      wss.handleUpgrade(req, sock, head, (ws) => {
        ws.on('message', (data: Buffer, binary: boolean) => {
          if (!binary && data.toString() === 'close-me') ws.close(4002, 'server says bye');
          else ws.send(binary ? data : data.toString());
        });
        ws.on('close', (code: number) => serverCloses.push(code));
      });
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    bed = await startBed(undefined, (app.address() as net.AddressInfo).port);
  });
  after(async () => {
    await bed?.close();
    app?.closeAllConnections();
    await new Promise((r) => app?.close(r));
  });

  it('echoes messages, and the app sees the client\'s verified identity only', async (t) => {
    const from = seen.length;
    const ws = await connect(bed.address.outbound, '/ok/echo');
    t.after(() => ws.terminate());
    for (const msg of ['hello through the mesh', 'a second message']) {
      ws.send(msg);
      assert.equal((await next(ws)).toString(), msg);
    }
    const s = seen.slice(from);
    assert.deepEqual(s.map((x) => x.url), ['/ok/echo']);
    const ids = s[0]!.raw.filter((_, i, a) => i % 2 === 1 && /^mesh.client.id$/i.test(a[i - 1]!));
    assert.deepEqual(ids, [CLIENT_ID]);
  });

  it('carries large binary messages both ways under flow control', { timeout: 60_000 }, async (t) => {
    const ws = await connect(bed.address.outbound, '/ok/large');
    t.after(() => ws.terminate());
    for (const size of [5 * MB, 64 * 1024 + 1]) {
      const data = randomBytes(size);
      ws.send(data);
      const back = await next(ws);
      assert.equal(back.length, size);
      assert.equal(sha(back), sha(data));
    }
  });

  it('passes close codes both ways', async () => {
    const a = await connect(bed.address.outbound, '/ok/close');
    const aClosed = closed(a);
    const before = serverCloses.length;
    a.close(4001, 'client says bye');
    assert.equal((await aClosed).code, 4001);
    await waitFor('the app to see the close', () => serverCloses.length > before, 5_000, 5);
    assert.equal(serverCloses.at(-1), 4001);

    const b = await connect(bed.address.outbound, '/ok/close');
    const bClosed = closed(b);
    b.send('close-me');
    assert.deepEqual(await bClosed, { code: 4002, reason: 'server says bye' });
  });

  it('refuses a handshake on a path the policy denies, and the app never sees it', async () => {
    const from = seen.length;
    const r = await refused(bed.address.outbound, '/denied/chat');
    assert.equal(r.status, 403);
    assert.match(String(r.headers['mesh-proxy-error']), /^denied: /);
    assert.equal(seen.length, from);
  });

  it('passes the app\'s refusal on as an ordinary response', async () => {
    const r = await refused(bed.address.outbound, '/ok/missing');
    assert.equal(r.status, 404);
    assert.equal(r.body, 'no such room\n');
    assert.equal(r.headers['mesh-proxy-error'], undefined);
  });

  it('counts the 101s on both sidecars', async (t) => {
    const count = (text: string, direction: RegExp) => text.split('\n')
      .filter((l) => l.startsWith('response_total{') && l.includes('status_code="101"') && direction.test(l))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    const text0 = bed.metrics.render();
    const ws = await connect(bed.address.outbound, '/ok/count');
    t.after(() => ws.terminate());
    const text = bed.metrics.render();
    assert.equal(count(text, /direction="inbound"/) - count(text0, /direction="inbound"/), 1);
    assert.equal(count(text, /dst_service="web"/) - count(text0, /dst_service="web"/), 1);
  });
});

describe('WebSocket to a sidecar of an older version', () => {
  it('is refused with an error that says the peer does not carry upgrades, and nothing reaches it', async () => {
    const ca = await makeCa();
    let requests = 0;
    // A peer that serves mesh/1 requests but announces no upgrades (as the previous version).
    const old = await muxPeer(ca.leaf(idOf('web')), ca.key.keyPem, ca.anchor.certPem, {
      request(_req, res) {
        requests++;
        res.writeHead(200, undefined, ['content-length', '0']);
        res.end();
      },
      upgrade: (_req, sock) => sock.destroy(),
    });
    const out = await outbound(ca, [{ instance: 'web-0', port: old.port, identity: idOf('web') }]);
    try {
      const r = await refused(Number(out.address.split(':')[1]), '/chat');
      assert.equal(r.status, 502);
      assert.match(String(r.headers['mesh-proxy-error']), /^protocol: .*does not carry upgrades \(WebSocket\) over mesh1: it is of an older version; upgrade it/);
      assert.equal(requests, 0);
    } finally {
      await out.close();
      await old.close();
    }
  });
});
