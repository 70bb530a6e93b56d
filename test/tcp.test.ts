// Opaque TCP through the mesh with real processes: a TCP echo app behind its sidecar, a client
// sidecar with upstream listeners (mesh run --upstream) and CONNECT on its outbound listener, mTLS
// shown by the metrics, authorization by identity and port, bulk both ways under backpressure,
// half-close, and a clear error from a sidecar of the previous version.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import tls from 'node:tls';
import type net from 'node:net';
import { TestMesh, freePort, request, waitFor, type WorkloadInfo } from './support/mesh.js';
import { connectTo, connectVia, exchange } from './support/tcp.js';
import { makeCa, muxPeer, idOf } from './support/mux-bed.js';
import { requestTarget } from '../src/proxy/layers/normalize.js';
import { newMtlsSessions } from '../src/proxy/layers/forward.js';
import { MeshFault } from '../src/proxy/errors.js';
import { compilePolicy, newPolicy } from '../src/model/policy.js';
import { parsePortList, parseUpstream } from '../src/model/ports.js';
import { classify } from '../src/proxy/tcp-listeners.js';
import { injectObject, type InjectReport } from '../src/platform/kubernetes/inject.js';
import { injectOpts } from './support/kube-fixtures.js';

const TCP_ECHO = new URL('../../test/fixtures/tcp-echo-app.mjs', import.meta.url).pathname;
const IDLE_APP = ['-e', 'setInterval(() => {}, 1 << 30)'];

/** Polls until the socket drains (true) or its queued bytes stop being taken: unchanged over 10 polls 20 ms apart (false). */
async function drainedOrStuck(sock: net.Socket): Promise<boolean> {
  let drained = false;
  const onDrain = () => (drained = true);
  sock.once('drain', onDrain);
  let last = sock.writableLength;
  for (let still = 0, polls = 0; !drained && still < 10 && polls < 250; polls++) {
    await new Promise((r) => setTimeout(r, 20));
    still = sock.writableLength === last ? still + 1 : 0;
    last = sock.writableLength;
  }
  sock.off('drain', onDrain);
  return drained;
}

describe('opaque TCP through the mesh', () => {
  const m = new TestMesh();
  let echo: WorkloadInfo;
  let client: WorkloadInfo & { upstreams: { authority: string; address: string }[] };
  let upstream = 0;
  let greetUpstream = 0;
  let greetPort = 0;

  const policy = async (...args: string[]) => {
    const r = await m.cli(['policy', ...args]);
    assert.equal(r.code, 0, `mesh policy ${args.join(' ')}: ${r.stderr}`);
  };
  const metricsOf = async (admin: string) => (await request(admin, { path: '/metrics' })).body;

  before(async () => {
    await m.install();
    echo = await m.run('echo', { app: TCP_ECHO });
    const greet = await m.run('greet', { app: TCP_ECHO, env: { ...process.env, GREETING: 'HELLO\r\n' } });
    greetPort = greet.appPort;
    upstream = await freePort();
    greetUpstream = await freePort();
    const r = await m.cli(['run', '-d', '-o', 'json', '--name', 'client', '--opaque-ports', String(greet.appPort),
      '--upstream', `echo:${echo.appPort}=127.0.0.1:${upstream}`, '--upstream', `greet:${greet.appPort}=${greetUpstream}`, '--', process.execPath, ...IDLE_APP]);
    assert.equal(r.code, 0, r.stderr);
    client = JSON.parse(r.stdout);
    // The client's sidecar learns the echo endpoint from the control plane.
    await waitFor('a first echo through the upstream listener', async () => (await exchange(await connectTo(upstream), 'ping', 3_000)).data.toString() === 'ping', 20_000, 100);
  });
  after(() => m.cleanup());

  it('says where the upstream listeners are', () => {
    assert.deepEqual(client.upstreams.map((u) => u.authority).sort(), [`echo:${echo.appPort}`, `greet:${client.upstreams.find((u) => u.authority.startsWith('greet'))!.authority.split(':')[1]}`].sort());
    assert.ok(client.upstreams.some((u) => u.address === `127.0.0.1:${upstream}`));
  });

  it('carries bytes both ways through an upstream listener, and the server\'s end after the client\'s (half-close)', async () => {
    const r = await exchange(await connectTo(upstream), 'hello through an upstream listener');
    assert.equal(r.data.toString(), 'hello through an upstream listener');
    assert.equal(r.ended, true, r.error);
  });

  it('opens a tunnel for CONNECT service:port on the outbound listener (HTTP_PROXY style)', async () => {
    const c = await connectVia(client.outbound, `echo:${echo.appPort}`);
    assert.equal(c.status, 200, c.head);
    const r = await exchange(c.sock, 'hello through CONNECT');
    assert.equal(r.data.toString(), 'hello through CONNECT');
    assert.equal(r.ended, true);
  });

  it('moves 32 MiB each way in order; a client that stops reading holds the sender back, then gets every byte', { timeout: 60_000 }, async () => {
    const size = 32 * 1024 * 1024;
    const payload = randomBytes(size);
    const sock = await connectTo(upstream);
    const got: Buffer[] = [];
    let received = 0;
    sock.on('data', (c: Buffer) => {
      got.push(c);
      received += c.length;
    });
    sock.pause();
    // Not reading: the client gets to write only what windows and socket buffers hold (not sidecar memory), then waits.
    let written = 0;
    let stalled = false;
    const chunk = 64 * 1024;
    const stallDeadline = Date.now() + 4_000;
    while (written < size && !stalled && Date.now() < stallDeadline) {
      const piece = payload.subarray(written, written + chunk);
      written += piece.length;
      if (!sock.write(piece)) stalled = !(await drainedOrStuck(sock));
    }
    const taken = written - sock.writableLength;
    console.log(`# a client that does not read got ${(taken / 1048576).toFixed(1)} MiB into the mesh (kernel buffers included) before it had to wait`);
    assert.ok(stalled && taken < size, `${taken} of ${size} bytes were taken without the client reading`);
    const t0 = Date.now();
    const done = new Promise<boolean>((resolve) => {
      sock.on('end', () => resolve(true));
      sock.on('close', () => resolve(false));
    });
    sock.resume();
    const writeRest = async () => {
      while (written < size) {
        const piece = payload.subarray(written, written + chunk);
        written += piece.length;
        if (!sock.write(piece)) await new Promise((r) => sock.once('drain', r));
      }
      sock.end();
    };
    await writeRest();
    assert.equal(await done, true, 'the server ended its side after the client\'s');
    const secs = (Date.now() - t0) / 1000;
    assert.equal(received, size);
    assert.equal(createHash('sha256').update(Buffer.concat(got)).digest('hex'), createHash('sha256').update(payload).digest('hex'));
    sock.destroy();
    console.log(`# 32 MiB each way through one mesh hop (echoed) in ${secs.toFixed(2)} s`);
  });

  it('keeps what waits for a stalled reader apart from the reads of other connections (the sidecars share one read buffer)', { timeout: 60_000 }, async () => {
    // Enough to stall past what windows and kernel buffers take: 19-21 MiB on an idle machine, and a clean-clone run at
    // load 6 took all of 32 MiB without holding the writer back (loopback buffers grow with the load's timing).
    const size = 64 * 1024 * 1024;
    const a = randomBytes(size);
    const sa = await connectTo(upstream);
    const gotA: Buffer[] = [];
    sa.on('data', (c: Buffer) => gotA.push(c));
    sa.pause();
    // A's echo fills its windows and waits in the server sidecar, its last read among what waits.
    let written = 0;
    let stalled = false;
    while (written < size && !stalled) {
      const piece = a.subarray(written, written + 64 * 1024);
      written += piece.length;
      if (!sa.write(piece)) stalled = !(await drainedOrStuck(sa));
    }
    assert.ok(stalled, 'the connection that does not read was held back');
    // B's bytes pass through the same sidecars meanwhile, read into the same buffer.
    const b = randomBytes(2 * 1024 * 1024);
    const rb = await exchange(await connectTo(upstream), b, 30_000);
    assert.ok(rb.data.equals(b), 'the other connection got its own bytes back');
    const doneA = new Promise<void>((resolve) => sa.on('end', () => resolve()));
    sa.resume();
    while (written < size) {
      const piece = a.subarray(written, written + 64 * 1024);
      written += piece.length;
      if (!sa.write(piece)) await new Promise((r) => sa.once('drain', r));
    }
    sa.end();
    await doneA;
    sa.destroy();
    assert.equal(createHash('sha256').update(Buffer.concat(gotA)).digest('hex'), createHash('sha256').update(a).digest('hex'), 'the stalled connection got every byte as sent');
  });

  it('passes a server-speaks-first protocol on a port declared opaque, before the client says anything', async () => {
    const sock = await connectTo(greetUpstream);
    const first = await new Promise<string>((resolve, reject) => {
      sock.once('data', (c: Buffer) => resolve(c.toString()));
      sock.once('close', () => reject(new Error('closed without a greeting')));
    });
    assert.equal(first, 'HELLO\r\n');
    sock.destroy();
  });

  it('proves mutual TLS in the metrics on both sides (tls="true", the verified identities)', async () => {
    await exchange(await connectTo(upstream), 'count me');
    const out = await metricsOf(client.admin);
    assert.match(out, new RegExp(`tcp_open_total\\{[^}]*direction="outbound",peer="dst",dst_namespace="default",dst_service="echo"[^}]*server_id="spiffe://cluster.local/ns/default/sa/echo",tls="true",protocol="opaque"\\} [1-9]`));
    assert.match(out, /tcp_write_bytes_total\{[^}]*dst_service="echo"[^}]*protocol="opaque"\} [1-9]/);
    const inbound = await metricsOf(echo.admin);
    assert.match(inbound, /tcp_open_total\{[^}]*direction="inbound",client_id="spiffe:\/\/cluster.local\/ns\/default\/sa\/client",tls="true",peer="src",protocol="opaque"\} [1-9]/);
    assert.match(inbound, /tcp_read_bytes_total\{[^}]*client_id="spiffe:\/\/cluster.local\/ns\/default\/sa\/client"[^}]*protocol="opaque"\} [1-9]/);
  });

  it('shows the TCP edge in mesh edges and the connections and bytes in mesh stat -o wide', { timeout: 60_000 }, async () => {
    // A connection held open, and bytes through it, for the control plane's next scrapes.
    const held = await connectTo(upstream);
    held.write(Buffer.alloc(256 * 1024, 7));
    held.resume();
    try {
      const edge = await waitFor('the TCP edge', async () => {
        const r = await m.cli(['edges', 'deployments', '-o', 'json']);
        const edges = JSON.parse(r.stdout) as { src: string; dst: string; secured: boolean; tcp_connections: number; server_id: string }[];
        return edges.find((e) => e.src === 'client-v1' && e.dst === 'echo-v1' && e.tcp_connections >= 1);
      }, 30_000, 500);
      assert.equal(edge!.secured, true);
      assert.equal(edge!.server_id, 'spiffe://cluster.local/ns/default/sa/echo');
      const row = await waitFor('echo-v1 TCP figures', async () => {
        const r = await m.cli(['stat', 'deployments', '-o', 'json']);
        const rows = JSON.parse(r.stdout) as { name: string; tcp_open_connections: number | null; tcp_read_bytes_rate: number | null }[];
        const echoRow = rows.find((x) => x.name === 'echo-v1');
        return echoRow && (echoRow.tcp_open_connections ?? 0) >= 2 && (echoRow.tcp_read_bytes_rate ?? 0) > 0 ? echoRow : undefined;
      }, 30_000, 500);
      assert.ok(row);
      const wide = await m.cli(['stat', 'deployments', '-o', 'wide']);
      assert.match(wide.stdout, /NAME\s+MESHED\s+SUCCESS\s+RPS\s+LATENCY_P50\s+LATENCY_P95\s+LATENCY_P99\s+TCP_CONN\s+READ_BYTES\/SEC\s+WRITE_BYTES\/SEC/);
      assert.match(wide.stdout, /^echo-v1\s+1\/1\s+-\s+-\s+-\s+-\s+-\s+[1-9]\d*\s+\S+\s+\S+/m);
    } finally {
      held.destroy();
    }
  });

  it('authorizes by identity and port: a denied connection is closed (403 to a CONNECT to an opaque port), an allowed one passes', { timeout: 30_000 }, async () => {
    await policy('default', 'deny', '--no-wait');
    await policy('allow', '--from', 'client', '--to', 'echo', '--port', String(echo.appPort + 1));
    const refused = await waitFor('the deny to reach the echo sidecar', async () => {
      const r = await exchange(await connectTo(upstream), 'let me in', 3_000);
      return r.data.length === 0 ? r : undefined;
    }, 10_000, 100);
    assert.equal(refused!.data.length, 0);
    // To a port declared opaque the tunnel opens first: the refusal is the CONNECT's answer.
    const c = await connectVia(client.outbound, `greet:${greetPort}`);
    assert.equal(c.status, 403, c.head);
    assert.match(c.head, /mesh-proxy-error: denied: greet\.default endpoint greet-v1-\w+: denied by default in namespace default/);
    c.sock.destroy();
    // To another port the sidecar answers at once and looks at what comes inside: bytes that are not HTTP are refused by a close.
    const d = await connectVia(client.outbound, `echo:${echo.appPort}`);
    assert.equal(d.status, 200, d.head);
    assert.equal((await exchange(d.sock, 'let me in', 5_000)).data.length, 0);
    assert.match(await metricsOf(echo.admin), /inbound_tcp_authz_deny_total\{[^}]*client_id="spiffe:\/\/cluster.local\/ns\/default\/sa\/client"[^}]*\} [1-9]/);

    // A rule with a path never admits a connection (it has no path); one for its port does.
    await policy('allow', '--no-wait', '--from', 'client', '--to', 'echo', '--path-prefix', '/api');
    await policy('allow', '--from', 'client', '--to', 'echo', '--port', String(echo.appPort));
    await waitFor('the allow rule', async () => (await exchange(await connectTo(upstream), 'allowed', 3_000)).data.toString() === 'allowed', 10_000, 100);
    await policy('delete', '--no-wait', '--from', 'client', '--to', 'echo', '--port', String(echo.appPort));
    await waitFor('the port rule gone, the path rule left', async () => (await exchange(await connectTo(upstream), 'x', 3_000)).data.length === 0, 10_000, 100);
    await policy('delete', '--all', '--no-wait');
  });

  it('refuses what cannot be carried with a status and a reason', async () => {
    const bad = await connectVia(client.outbound, 'echo');
    assert.equal(bad.status, 400);
    bad.sock.destroy();
    // Raw bytes on the outbound listener name no destination: closed, nothing sent back.
    const r = await exchange(await connectTo(Number(client.outbound.split(':')[1])), '*1\r\n$4\r\nPING\r\n', 5_000);
    assert.equal(r.data.length, 0);
  });
});

describe('mesh/1 tunnels with a sidecar of the previous version', () => {
  it('fail with an error that says the peer does not carry TCP', async () => {
    const ca = await makeCa();
    // The previous version has no CONNECT: its inbound side takes the head as a request with a bad target (400).
    const old = await muxPeer(ca.leaf(idOf('web')), ca.key.keyPem, ca.anchor.certPem, {
      request(req, res) {
        const t = requestTarget(req.url, req.host, req.hosts, req.minor);
        const body = Buffer.from(typeof t === 'string' ? `${t}\n` : 'ok\n');
        res.writeHead(typeof t === 'string' ? 400 : 200, undefined, ['content-length', String(body.length), 'mesh-proxy-error', typeof t === 'string' ? t : '']);
        res.end(body);
      },
      upgrade: (_req, sock) => sock.destroy(),
    });
    const sessions = newMtlsSessions();
    try {
      const secureContext = tls.createSecureContext({ cert: ca.leaf(idOf('client')), key: ca.key.keyPem, ca: ca.anchor.certPem });
      const t = sessions.tunnel('127.0.0.1', old.port, { servername: 'web.default.mesh.local', checkServerIdentity: () => undefined, secureContext }, 'web:8080', []);
      assert.ok(!(t instanceof MeshFault));
      const err = await new Promise<MeshFault>((resolve, reject) => {
        t.once('error', resolve);
        t.once('open', () => reject(new Error('opened')));
      });
      assert.equal(err.kind, 'protocol');
      assert.match(err.message, /peer sidecar does not carry TCP \(it answered CONNECT with 400: only http:\/\/ absolute URIs are proxied\); upgrade it/);
    } finally {
      sessions.destroy();
      await old.close();
    }
  });
});

describe('TCP building blocks', () => {
  it('tells HTTP, CONNECT and opaque first bytes apart', () => {
    const cases: Array<[string, string | null]> = [
      ['GET / HTTP/1.1\r\nHost: x\r\n\r\n', 'http'],
      ['CONNECT redis:6379 HTTP/1.1\r\n', 'connect'],
      ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'http'],
      ['*1\r\n$4\r\nPING\r\n', 'opaque'],
      ['PING\r\n', 'opaque'],
      ['SET key value\r\n', 'opaque'],
      ['\x16\x03\x01', 'opaque'],
      ['GET / HT', null],
      ['GE', null],
    ];
    for (const [bytes, want] of cases) assert.equal(classify(Buffer.from(bytes, 'latin1')), want, JSON.stringify(bytes));
    assert.equal(classify(Buffer.alloc(9000, 0x41)), 'opaque', 'a line that never ends is not HTTP');
  });

  it('parses --upstream and --opaque-ports, and says what is wrong', () => {
    assert.deepEqual(parseUpstream('redis:6379=127.0.0.1:16379'), { authority: 'redis:6379', listenPort: 16379 });
    assert.deepEqual(parseUpstream('db.data:5432=15432'), { authority: 'db.data:5432', listenPort: 15432 });
    for (const [bad, why] of [['redis:6379', /SERVICE:PORT=127.0.0.1:LOCAL_PORT/], ['Redis:6379=1', /SERVICE\[.NAMESPACE\]:PORT/], ['redis:0=1', /not 1-65535/],
      ['redis:6379=10.0.0.1:1', /not a local port/], ['a.b.c:1=2', /SERVICE\[.NAMESPACE\]:PORT/]] as const) {
      assert.throws(() => parseUpstream(bad), why);
    }
    const ports = parsePortList('3306, 6379,8000-8100');
    assert.equal(ports.has(3306) && ports.has(8050) && !ports.has(8101) && !ports.has(80), true);
    assert.equal(ports.toString(), '3306,6379,8000-8100');
    assert.throws(() => parsePortList('70000'), /'70000' is not a port/);
    assert.throws(() => parsePortList('9-3'), /'9-3'/);
  });

  it('passes the mesh.io/opaque-ports annotation to the injected proxy (MESH_OPAQUE_PORTS), warning on bad entries', () => {
    const pod = (annotations: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'db', annotations }, spec: { containers: [{ name: 'db', image: 'mysql', ports: [{ containerPort: 3306 }] }] } });
    const envOf = (o: unknown) => ((o as { spec: { initContainers: { name: string; env: { name: string; value?: string }[] }[] } }).spec.initContainers
      .find((c) => c.name === 'mesh-proxy')!.env.find((e) => e.name === 'MESH_OPAQUE_PORTS'))?.value;
    const reports: InjectReport[] = [];
    assert.equal(envOf(injectObject(pod({ 'mesh.io/opaque-ports': '3306, 6379,8000:8100,x' }), injectOpts(), reports)), '3306,6379,8000-8100');
    assert.match(reports.flatMap((r) => r.warnings).join('\n'), /mesh\.io\/opaque-ports: 'x' is not a port or range/);
    assert.equal(envOf(injectObject(pod({}), injectOpts(), [])), undefined, 'nothing added without the annotation');
    assert.equal(parsePortList('3306,6379,8000-8100').has(8050), true, 'the proxy reads what inject wrote');
  });

  it('decides egress per namespace from the policies (deny wins, absent allows)', () => {
    const deny = { ...newPolicy('shop', 'allow'), spec: { default: 'allow' as const, rules: [], egress: 'deny' as const } };
    const c = compilePolicy({ policies: [deny, newPolicy('shop', 'allow', [], 'other'), newPolicy('free', 'deny')] });
    assert.equal(c.egressAllowed('shop'), false);
    assert.equal(c.egressAllowed('free'), true);
    assert.equal(c.egressAllowed('nowhere'), true);
    assert.equal(c.check({ namespace: 'shop', toService: 'x', clientIdentity: null, path: null }).allowed, true);
  });
});

