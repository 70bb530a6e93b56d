// HTTP/2 cleartext from unmeshed callers on the inbound port: a client without the mesh's mTLS (an unmeshed pod whose
// connection mesh-init redirected) opens with the HTTP/2 preface, and each stream runs the inbound stack as an
// unauthenticated caller: policy decides per stream, an identity header it sends never reaches the app, a gRPC caller
// is refused with PERMISSION_DENIED. The proxy is the real `mesh proxy --platform kubernetes` (which takes plaintext on
// its inbound port) for a pod with a gRPC app (its Service port says appProtocol grpc: spoken to as h2c) and an
// HTTP/1.1 app; the clients are @grpc/grpc-js with insecure credentials, node:http2 and curl.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { request, waitFor } from './support/mesh.js';
import { seedMeshPod } from './support/kube-mesh.js';
import { startShopPod, TD, type ShopPod } from './support/kube-shop.js';
import { ECHO_PROTO, echoClient, say, type EchoClient } from './support/grpc.js';
import { startBed, type Bed } from './support/hostile/bed.js';
import { renderCrds } from '../src/platform/kubernetes/crds.js';
import { PREFACE } from '../src/proxy/wire/h2-server.js';
import { Tap } from '../src/proxy/tap.js';
import type { ControlClient } from '../src/api/client.js';
import type { TapEvent } from '../src/api/tap.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const SPOOFED = `spiffe://${TD}/ns/default/sa/admin`;
/** The Service's ports: 9090 targets the gRPC app, 8080 the HTTP/1.1 one. */
const GRPC = 'shop:9090';
const HTTP = 'shop:8080';
/** The proxy's wait for a connection's first bytes (MESH_PROXY_HANDSHAKE_TIMEOUT_MS), short for the test. */
const DETECT_MS = 1500;

/** A reply over one HTTP/2 session: status, body, and the error header the proxy answers its refusals with. */
function h2get(s: http2.ClientHttp2Session, authority: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = s.request({ ':method': body === undefined ? 'GET' : 'POST', ':path': path, ':authority': authority, ...headers }, { endStream: body === undefined });
    let status = 0;
    let text = '';
    r.on('response', (h) => (status = Number(h[':status'])));
    r.setEncoding('utf8');
    r.on('data', (c: string) => (text += c));
    r.on('end', () => resolve({ status, body: text }));
    r.on('error', reject);
    if (body !== undefined) r.end(body);
  });
}

describe('unmeshed HTTP/2 (h2c, gRPC) on the inbound port', () => {
  let pod: ShopPod;
  let grpcApp: grpc.Server;
  let httpApp: http.Server;
  let admin = '';
  const clients: EchoClient[] = [];
  const sessions: http2.ClientHttp2Session[] = [];
  /** The proxy's inbound listener for each app; any of them takes any Service port in Host. */
  const listener = () => `127.0.0.1:${pod.listeners[0]}`;
  const grpcClient = (): EchoClient => {
    const c = echoClient(listener(), GRPC);
    clients.push(c);
    return c;
  };
  const session = (): http2.ClientHttp2Session => {
    const s = http2.connect(`http://${listener()}`);
    s.on('error', () => {});
    sessions.push(s);
    return s;
  };
  const setPolicy = (spec: Obj | null): void => {
    const ref = { apiVersion: 'mesh.io/v1alpha1', kind: 'Policy', name: 'default', namespace: 'default' };
    pod.server.store.delete(ref);
    if (spec !== null) pod.server.store.create({ apiVersion: ref.apiVersion, kind: 'Policy', metadata: { name: 'default', namespace: 'default' }, spec });
  };

  before(async () => {
    // The gRPC app: Say answers with the caller identity the proxy passed on ('-' for none); Count streams n replies.
    const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(ECHO_PROTO, { defaults: true })) as Obj;
    grpcApp = new grpc.Server();
    grpcApp.addService(pkg.meshtest.Echo.service, {
      say: (call: Obj, cb: (e: null, m: Obj) => void) => cb(null, { text: call.request.text, who: String(call.metadata.get('mesh-client-id')[0] ?? '-') }),
      count: (call: Obj) => {
        for (let i = 1; i <= call.request.n; i++) call.write({ n: i });
        call.end();
      },
    });
    const grpcPort = await new Promise<number>((r, j) => grpcApp.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? j(e) : r(p))));
    httpApp = http.createServer((req, res) => {
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => res.end(req.url === '/trailers' ? JSON.stringify(req.trailers) : `http/${req.httpVersion} ${req.method} ${req.url} ${n} ${req.headers['mesh-client-id'] ?? '-'}`));
    });
    await new Promise<void>((r) => httpApp.listen(0, '127.0.0.1', r));
    const httpPort = (httpApp.address() as net.AddressInfo).port;
    pod = await startShopPod({
      tmpPrefix: 'mesh-h2c-inbound-',
      env: { MESH_PROXY_HANDSHAKE_TIMEOUT_MS: String(DETECT_MS) },
      apps: { ports: [grpcPort, httpPort], close: () => new Promise<void>((r) => grpcApp.tryShutdown(() => httpApp.close(() => r()))) },
      seed: (server) => {
        for (const crd of renderCrds()) server.store.create(crd as Obj);
        seedMeshPod(server, 'shop-v1-a', { app: 'shop', version: 'v1' }, { sa: 'shop', ip: '10.0.2.1' });
        server.store.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'shop', namespace: 'default' }, spec: { selector: { app: 'shop' }, ports: [
          { name: 'grpc', port: 9090, targetPort: grpcPort, appProtocol: 'grpc' }, { name: 'http', port: 8080, targetPort: httpPort },
        ] } });
        server.store.create({
          apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
          metadata: { name: 'shop-abc', namespace: 'default', labels: { 'kubernetes.io/service-name': 'shop' } },
          ports: [{ name: 'grpc', port: grpcPort, protocol: 'TCP' }, { name: 'http', port: httpPort, protocol: 'TCP' }],
          endpoints: [{ addresses: ['10.0.2.1'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'shop-v1-a', namespace: 'default' } }],
        });
      },
    });
    const line = pod.output().split('\n').find((l) => l.startsWith('{'))!;
    const a = (JSON.parse(line) as { admin: string }).admin;
    admin = `127.0.0.1:${a.slice(a.lastIndexOf(':') + 1)}`;
    // Until the snapshot says the gRPC port speaks h2c, the proxy speaks HTTP/1.1 to it.
    const c = grpcClient();
    await waitFor('a plaintext gRPC call to get through', async () => (await say(c, { text: 'ready' })).status.code === grpc.status.OK, 15_000, 200)
      .catch((err: Error) => { throw new Error(`${err.message}\n${pod.output()}`); });
  });
  after(async () => {
    for (const c of clients) c.close();
    for (const s of sessions) s.destroy();
    await pod?.close();
  });

  it('serves an unmeshed gRPC client (grpc-js, insecure): unary and server streaming, the app spoken to as h2c', async () => {
    const c = grpcClient();
    const u = await say(c, { text: 'hello' });
    assert.equal(u.status.code, grpc.status.OK, u.status.details);
    assert.deepEqual([u.reply?.text, u.reply?.who], ['hello', '-']);
    const got: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = c.count({ n: 5 });
      call.on('data', (m: { n: number }) => got.push(m.n));
      call.on('error', reject);
      call.on('end', resolve);
    });
    assert.deepEqual(got, [1, 2, 3, 4, 5]);
  });

  it('serves node:http2 to an HTTP/1.1 app as HTTP/1.1, many streams on one connection, and advertises its stream bound', async () => {
    const s = session();
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => h2get(s, HTTP, `/r/${i}`)));
    replies.forEach((r, i) => assert.deepEqual(r, { status: 200, body: `http/1.1 GET /r/${i} 0 -` }));
    assert.deepEqual(await h2get(s, HTTP, '/post', {}, 'x'.repeat(70_000)), { status: 200, body: 'http/1.1 POST /post 70000 -' });
    assert.equal(s.remoteSettings.maxConcurrentStreams, 100);
  });

  it('drops an identity a plaintext caller claims, in any spelling, for gRPC and HTTP alike', async () => {
    const md = new grpc.Metadata();
    md.set('mesh-client-id', SPOOFED);
    const u = await say(grpcClient(), { text: 'spoof' }, { md });
    assert.equal(u.status.code, grpc.status.OK, u.status.details);
    assert.equal(u.reply?.who, '-');
    const s = session();
    for (const name of ['mesh-client-id', 'mesh_client_id']) {
      assert.deepEqual(await h2get(s, HTTP, '/spoof', { [name]: SPOOFED }), { status: 200, body: 'http/1.1 GET /spoof 0 -' });
    }
    // Nor in the request's trailers, which go on to the app (as HTTP/1.1's chunked trailers).
    const body = await new Promise<string>((resolve, reject) => {
      const r = s.request({ ':method': 'POST', ':path': '/trailers', ':authority': HTTP }, { waitForTrailers: true });
      r.on('wantTrailers', () => r.sendTrailers({ 'x-sum': '7', 'mesh-client-id': SPOOFED }));
      let text = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (text += c));
      r.on('end', () => resolve(text));
      r.on('error', reject);
      r.end('abc');
    });
    assert.deepEqual(JSON.parse(body), { 'x-sum': '7' });
  });

  it('takes the preface however it is split, and drops a connection that stops within it', async () => {
    // The preface in pieces, then a request: served as HTTP/2.
    const s = http2.connect(`http://${listener()}`, {
      createConnection: () => {
        const sock = net.connect(pod.listeners[0]!, '127.0.0.1');
        const write = sock.write.bind(sock) as (b: Buffer | string, ...rest: unknown[]) => boolean;
        let first = true;
        (sock as { write: unknown }).write = (b: Buffer | string, ...rest: unknown[]) => {
          if (!first) return write(b, ...rest);
          first = false;
          const buf = Buffer.isBuffer(b) ? b : Buffer.from(b);
          write(buf.subarray(0, 3));
          setImmediate(() => write(buf.subarray(3, 10)));
          setTimeout(() => write(buf.subarray(10), ...rest), 20);
          return true;
        };
        return sock;
      },
    });
    s.on('error', () => {});
    sessions.push(s);
    assert.deepEqual(await h2get(s, HTTP, '/split'), { status: 200, body: 'http/1.1 GET /split 0 -' });
    // Part of the preface, then silence: dropped once the detection time is up, not held as HTTP/1.1's head would be.
    const sock = net.connect(pod.listeners[0]!, '127.0.0.1');
    sock.on('error', () => {});
    const t0 = Date.now();
    sock.write(PREFACE.subarray(0, 16));
    await new Promise<void>((r, j) => {
      const deadline = setTimeout(() => j(new Error('a stalled preface was not dropped in 8 s')), 8000);
      sock.on('close', () => {
        clearTimeout(deadline);
        r();
      });
    });
    assert.ok(Date.now() - t0 >= DETECT_MS - 200, `dropped after ${Date.now() - t0} ms`);
  });

  it('curl --http2-prior-knowledge gets through', async (t) => {
    const curl = await new Promise<boolean>((r) => execFile('curl', ['--version'], (e) => r(e === null)));
    if (!curl) return t.skip('curl is not installed');
    const out = await new Promise<{ code: number; stdout: string }>((resolve) => execFile('curl', [
      '-sS', '--http2-prior-knowledge', '-D', '-', '--max-time', '10', '-H', `host: ${HTTP}`, '-H', `mesh-client-id: ${SPOOFED}`, `http://${listener()}/curl`,
    ], (e, stdout) => resolve({ code: e ? 1 : 0, stdout })));
    assert.equal(out.code, 0);
    assert.match(out.stdout, /^HTTP\/2 200/);
    assert.match(out.stdout, /http\/1\.1 GET \/curl 0 -$/);
  });

  it('counts these requests as inbound without TLS and without a client identity', async () => {
    const body = (await request(admin, { path: '/metrics' })).body;
    const plain = [...body.matchAll(/^request_total\{([^}]*)\} (\d+)$/gm)].filter(([, l]) => /direction="inbound"/.test(l!) && /tls="false"/.test(l!));
    assert.ok(plain.length > 0, body);
    for (const [, l] of plain) assert.match(l!, /client_id=""/);
    assert.ok(plain.reduce((n, [, , v]) => n + Number(v), 0) >= 25);
    assert.ok(!/^request_total\{[^}]*tls="true"[^}]*\} [1-9]/m.test(body), 'no request counted as mTLS');
    // gRPC calls are counted by their grpc-status.
    assert.match(body, /^response_total\{[^}]*direction="inbound"[^}]*tls="false"[^}]*grpc_status="0"\} [1-9]/m);
  });

  it('authorizes each stream: a policy change reaches the next stream of a connection already open', async () => {
    const s = session();
    assert.equal((await h2get(s, HTTP, '/before')).status, 200);
    setPolicy({ default: 'deny', rules: [] });
    await waitFor('the default deny to reach the open connection', async () => (await h2get(s, HTTP, '/after')).status === 403, 15_000, 100);
    assert.ok(!s.closed && !s.destroyed, 'the same connection');
    assert.equal((await h2get(s, HTTP, '/after')).status, 403);
  });

  it('refuses a gRPC caller under default deny with PERMISSION_DENIED, trailers-only', async () => {
    // Still the default deny of the test before.
    const u = await say(grpcClient(), { text: 'denied' });
    assert.equal(u.status.code, grpc.status.PERMISSION_DENIED, u.status.details);
    assert.equal(u.headers, null, 'no response head before the status: trailers-only');
    assert.equal(u.reply, null);
  });

  it('refuses a plaintext caller where a rule admits verified identities only, while a meshed caller gets in', async () => {
    setPolicy({ default: 'deny', rules: [{ from: '*', to: 'shop' }] });
    await waitFor('the rule to reach the proxy', async () => (await pod.mtlsGet(pod.listeners[1]!, '/m', { host: HTTP })).status === 200, 15_000, 100);
    const u = await say(grpcClient(), { text: 'no identity' });
    assert.equal(u.status.code, grpc.status.PERMISSION_DENIED, u.status.details);
    assert.equal((await h2get(session(), HTTP, '/n')).status, 403);
    const spoofed = new grpc.Metadata();
    spoofed.set('mesh-client-id', SPOOFED);
    assert.equal((await say(grpcClient(), { text: 'claims one' }, { md: spoofed })).status.code, grpc.status.PERMISSION_DENIED);
    setPolicy(null);
  });
});

describe('mesh tap on the inbound port', () => {
  let bed: Bed;
  let tap: Tap;
  let app: http.Server;
  const events: TapEvent[] = [];
  let release: (() => void) | null = null;

  before(async () => {
    app = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    bed = await startBed(undefined, (app.address() as net.AddressInfo).port);
    // The control plane's side of a tap: one tap on this proxy, then a watch that waits; reports are kept.
    let watched = false;
    const control = {
      request: async (method: string, _path: string, body?: { events: Record<string, TapEvent[]> }) => {
        if (method === 'POST') {
          events.push(...(body!.events.t ?? []));
          return { status: 200, body: { active: ['t'] } };
        }
        if (watched) return new Promise((r) => (release = () => r({ status: 204, body: null })));
        watched = true;
        return { status: 200, body: { version: '1', taps: [{ id: 't', maxRps: 100, redact: [], headers: false }] } };
      },
    } as unknown as ControlClient;
    tap = new Tap(control, { identity: 'spiffe://cluster.local/ns/default/sa/web', instance: 'web-v1-a' });
    bed.telemetry.tap = tap;
    tap.start();
    await waitFor('the tap to start', () => tap.on, 5000, 10);
  });
  after(async () => {
    tap.stop();
    release?.();
    await bed.close();
    app.close();
  });

  it('shows a plaintext HTTP/2 stream as inbound, without TLS and without a client identity', async () => {
    const s = http2.connect(`http://127.0.0.1:${bed.address['inbound-plain']}`);
    s.on('error', () => {});
    try {
      assert.equal((await h2get(s, 'web', '/tapped', { 'mesh-client-id': SPOOFED })).status, 200);
    } finally {
      s.destroy();
    }
    const ev = (await waitFor('the tap event', () => events.find((e) => e.path === '/tapped'), 5000, 20))!;
    assert.deepEqual([ev.direction, ev.method, ev.status, ev.src, ev.tls], ['inbound', 'GET', 200, '', false]);
  });
});
