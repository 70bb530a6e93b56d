// A sidecar never loads node:http or node:https (issue 14: ~0.6 MB RSS each): it speaks HTTP/1.1 with its own codec
// on every side, its admin listener, its control-plane client, its trace export and its upgrades to the app included.
// Real sidecars (a local workload's, and `mesh proxy --platform kubernetes`) run under a preload that fails any
// require of them and reports at exit every http builtin loaded however; traffic of every kind passes meanwhile.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { TestMesh, request, startMesh, waitFor, type WorkloadInfo } from './support/mesh.js';
import { get } from './support/http.js';
import { watchForHttp, type NoHttpWatch } from './support/no-http.js';
import { startFakeApiServer, type FakeApiServer } from './support/kube/fake-api-server.js';
import { seedControlPlane, seedMeshPod, startKubeControlProcess, type KubeControlProcess } from './support/kube-mesh.js';
import { fixture } from './support/golden.js';
import { renderCrds } from '../src/platform/kubernetes/crds.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Collects the OTLP exports a sidecar sends: how many, and the trace ids in them. */
async function startCollector(): Promise<{ url: string; traceIds: Set<string>; server: http.Server }> {
  const traceIds = new Set<string>();
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      for (const m of body.matchAll(/"traceId":"([0-9a-f]{32})"/g)) traceIds.add(m[1]!);
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, traceIds, server };
}

/** Writes each step on one connection and reads until its `until` holds or the peer closes; `closes`: then waits for the close. */
async function converse(address: string, steps: { send: string; until: (got: string) => boolean }[], closes = false): Promise<{ got: string; closed: boolean }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  const sock = net.connect(port, host);
  let got = '';
  let closed = false;
  sock.on('data', (c: Buffer) => (got += c.toString('latin1')));
  sock.on('close', () => (closed = true));
  sock.on('error', () => {});
  try {
    for (const s of steps) {
      sock.write(s.send);
      await waitFor(`an answer to ${JSON.stringify(s.send.slice(0, 30))}`, () => s.until(got) || closed, 10_000, 10);
    }
    if (closes) await waitFor('the connection to close', () => closed, 10_000, 10);
    return { got, closed };
  } finally {
    sock.destroy();
  }
}

const complete = (n: number) => (got: string) => (got.match(/^HTTP\/1\.1 \d{3} /gm)?.length ?? 0) >= n && got.endsWith('\n');

function assertNoHttp(watch: NoHttpWatch, pid: number, what: string): void {
  assert.deepEqual(watch.required(), [], 'no sidecar required node:http(s)');
  assert.deepEqual(watch.loaded(pid), [], `${what} loaded no http builtin`);
}

describe('a sidecar without node:http', () => {
  let watch: NoHttpWatch;
  before(() => {
    watch = watchForHttp();
  });
  after(() => watch.cleanup());

  it('a local workload: requests, an upgrade, admin and scrapes, its certificate and spans, all on its own codec', { timeout: 120_000 }, async (t) => {
    const m = new TestMesh();
    const collector = await startCollector();
    t.after(async () => {
      await m.cleanup();
      collector.server.close();
    });
    await m.install(['--scrape-interval', '1s']);
    const web = await m.run('web', { env: watch.env, extra: ['--trace-collector', collector.url] });
    const client: WorkloadInfo = await m.run('client', { env: watch.env });

    // HTTP/1.1 through both sidecars (mesh/1 between them, with certificates from the control plane).
    const traceId = 'ab'.repeat(16);
    const r = await request(client.outbound, { path: '/hello', headers: { host: 'web', traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).path, '/hello');

    // An upgrade: web's sidecar makes it to its app with its own client codec, then joins the two connections.
    const up = await converse(client.outbound, [
      { send: 'GET /upgrade HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n', until: (g) => g.includes('\r\n\r\n') },
      { send: 'bytes both ways', until: (g) => g.endsWith('bytes both ways') },
    ]);
    assert.match(up.got, /^HTTP\/1\.1 101 Switching Protocols\r\n[^]*\r\n\r\nbytes both ways$/i);

    // The admin listener: keep-alive, Prometheus' content type, HEAD without a body, 405, then 400 on garbage.
    const admin = await converse(web.admin, [
      { send: 'GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n', until: (g) => /request_total\{[^]*\n$/.test(g) },
      { send: 'HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n', until: complete(2) },
      { send: 'GET /ready?x=1 HTTP/1.1\r\nHost: a\r\n\r\n', until: (g) => g.endsWith('ready\n') },
      { send: 'POST /live HTTP/1.1\r\nHost: a\r\n\r\n', until: (g) => g.endsWith('only GET and HEAD\n') },
      { send: 'GET /nosuch HTTP/1.1\r\nHost: a\r\n\r\n', until: (g) => g.endsWith('not found\n') },
      { send: 'NOT HTTP\r\n\r\n', until: (g) => /HTTP\/1\.1 400 [^]*\n$/.test(g) },
    ], true);
    const heads = [...admin.got.matchAll(/^HTTP\/1\.1 (\d{3}) [^]*?\r\n\r\n/gm)];
    assert.deepEqual(heads.map((h) => Number(h[1])), [200, 200, 200, 405, 404, 400], admin.got);
    assert.match(heads[0]![0], /\r\ncontent-type: text\/plain; version=0\.0\.4\r\n/);
    const length = Number(/\r\ncontent-length: (\d+)\r\n/.exec(heads[1]![0])?.[1]);
    assert.ok(length > 0 && length === Number(/\r\ncontent-length: (\d+)\r\n/.exec(heads[0]![0])?.[1]), 'HEAD says the length GET sends');
    assert.ok(admin.got.slice(heads[1]!.index! + heads[1]![0].length).startsWith('HTTP/1.1 200'), 'no body after the HEAD answer');
    assert.equal(admin.closed, true, 'a malformed request closes the connection');
    const upgrade = await converse(web.admin, [{ send: 'GET /live HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', until: (g) => g.endsWith('does not upgrade\n') }], true);
    assert.match(upgrade.got, /^HTTP\/1\.1 400 /);
    assert.equal(upgrade.closed, true, 'an upgrade request gets its answer and the connection closes');
    const metrics = (await get(web.admin, '/metrics')).body;
    const expiry = Number(/^identity_cert_expiration_timestamp_seconds\{[^}]*\} (\S+)$/m.exec(metrics)?.[1]);
    assert.ok(expiry > Date.now() / 1000, 'web holds a certificate from the control plane');

    // The control plane scrapes both admin listeners (mesh stat), and keeps the client's spans (its API, by the
    // sidecar's client); web's spans went to the collector it was given.
    await waitFor('mesh stat to show the requests to web', async () => {
      const s = await m.cli(['stat', 'deploy', '-o', 'json']);
      return s.code === 0 && (JSON.parse(s.stdout) as { name: string; success: number | null }[]).some((row) => row.name === 'web-v1' && row.success !== null);
    }, 30_000, 500);
    await waitFor('the client\'s span at the control plane', async () => (await m.api('GET', `/v1/traces/${traceId}`, { bearer: m.adminToken() })).status === 200, 15_000, 200);
    await waitFor('web\'s span at its collector', () => collector.traceIds.has(traceId), 15_000, 100);

    for (const w of [web, client]) assert.equal((await m.cli(['stop', w.instance])).code, 0);
    await waitFor('both sidecars to report at exit', () => watch.loaded(web.pid) !== undefined && watch.loaded(client.pid) !== undefined, 15_000, 100);
    assertNoHttp(watch, web.pid, "web's sidecar");
    assertNoHttp(watch, client.pid, "the client's sidecar");
  });

  describe('mesh proxy --platform kubernetes', () => {
    let server: FakeApiServer;
    let dir: string;
    let control: KubeControlProcess;
    before(async () => {
      server = await startFakeApiServer({ tokenReviews: { 'projected-reviews': { username: 'system:serviceaccount:default:reviews', audiences: ['mesh.io'] } } });
      for (const crd of renderCrds()) server.store.create(crd as Obj);
      seedMeshPod(server, 'reviews-v1-a', { app: 'reviews', version: 'v1' }, { ip: '10.1.0.1' });
      dir = mkdtempSync(join(tmpdir(), 'mesh-nohttp-kube-'));
      seedControlPlane(server, { trustAnchorsPem: fixture('kube', 'anchor.crt'), issuerCertPem: fixture('kube', 'issuer.crt'), issuerKeyPem: fixture('kube', 'issuer.key') });
      control = await startKubeControlProcess(server, dir);
    });
    after(async () => {
      await control?.process.stop();
      await server?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('starts with a certificate from mesh-control, serves the app and its admin port, exports spans', { timeout: 60_000 }, async (t) => {
      const app = http.createServer((_req, res) => res.end('app ok'));
      await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
      const collector = await startCollector();
      const tokenFile = join(dir, 'token');
      writeFileSync(tokenFile, 'projected-reviews\n');
      const proxy = startMesh(['--platform', 'kubernetes', 'proxy', '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0'], {
        ...watch.env, MESH_NAMESPACE: 'default', MESH_POD_NAME: 'reviews-v1-a', MESH_SERVICE_ACCOUNT: 'reviews', MESH_VERSION: 'v1',
        MESH_TRUST_DOMAIN: 'cluster.local', MESH_CONTROL_ADDRESS: `127.0.0.1:${control.port}`, MESH_IDENTITY_TOKEN_FILE: tokenFile,
        MESH_TRUST_ANCHORS: fixture('kube', 'anchor.crt'), MESH_APP_PORT: String((app.address() as AddressInfo).port),
        MESH_TRACE_COLLECTOR: collector.url,
      });
      t.after(async () => {
        await proxy.stop();
        app.close();
        collector.server.close();
      });
      const addrs = await proxy.until('its listeners', (out) => {
        const line = out.split('\n').find((l) => l.startsWith('{'));
        return line ? JSON.parse(line) as { admin: string; inbound: string } : undefined;
      }, 30_000);
      const admin = `127.0.0.1:${addrs.admin.split(':').pop()}`;
      await waitFor('the proxy to be ready', async () => (await get(admin, '/ready')).status === 200, 20_000, 100)
        .catch((err: Error) => { throw new Error(`${err.message}\n${proxy.output()}`); });
      const metrics = await get(admin, '/metrics');
      assert.equal(metrics.headers['content-type'], 'text/plain; version=0.0.4');
      const expiry = Number(/^identity_cert_expiration_timestamp_seconds\{[^}]*\} (\S+)$/m.exec(metrics.body)?.[1]);
      assert.ok(expiry > Date.now() / 1000, 'the proxy holds a certificate from mesh-control');
      const traceId = 'cd'.repeat(16);
      const probe = await get(`127.0.0.1:${addrs.inbound.split(':').pop()}`, '/healthz', { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
      assert.deepEqual([probe.status, probe.body], [200, 'app ok']);
      await waitFor('the span at the collector', () => collector.traceIds.has(traceId), 15_000, 100);
      const pid = proxy.child.pid!;
      assert.equal(await proxy.stop(), 0, proxy.output());
      assertNoHttp(watch, pid, 'the injected proxy');
    });
  });
});
