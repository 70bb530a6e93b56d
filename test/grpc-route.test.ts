// gRPC semantics of mesh route and policy, with a real gRPC stack (@grpc/grpc-js): routes matching the
// method path, the client's grpc-timeout honoured and passed on shrunk, retries by gRPC status, faults
// aborting with a gRPC status, and the proxy's own answers counted with the grpc_status they were sent with.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import grpc from '@grpc/grpc-js';
import { TestMesh, request, waitFor, type WorkloadInfo } from './support/mesh.js';
import { GRPC_APP, echoClient, grpcCounts, say, untilAnsweredBy, type EchoClient, type Msg } from './support/grpc.js';

/** A Say request as one length-prefixed message, Msg{text}, for a client that is not grpc-js. */
function sayFrame(text: string): Buffer {
  const t = Buffer.from(text);
  const msg = Buffer.concat([Buffer.from([0x0a, t.length]), t]);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(msg.length, 1);
  return Buffer.concat([head, msg]);
}

/** response_total of gRPC responses on one sidecar, by `direction status_code grpc_status`. */
const statusCounts = (admin: string) => grpcCounts([admin], ['direction', 'status_code']);

describe('gRPC routes, deadlines, retries and faults', () => {
  const m = new TestMesh();
  let client: WorkloadInfo;
  const servers: WorkloadInfo[] = [];
  let echo: EchoClient;

  const route = async (...args: string[]) => {
    const r = await m.cli(['route', ...args, ...(args[0] === 'set' || args[0] === 'clear' ? ['--wait-timeout', '20s'] : [])]);
    assert.equal(r.code, 0, r.stderr);
    return r;
  };

  before(async () => {
    await m.install();
    const [r, a, b] = await Promise.all([
      m.cli(['run', '-d', '-o', 'json', '--name', 'client', '--', process.execPath, '-e', 'setInterval(() => {}, 1e9)']),
      m.run('echo', { app: GRPC_APP, extra: ['--app-protocol', 'h2c'] }),
      m.run('echo', { version: 'v2', app: GRPC_APP, extra: ['--app-protocol', 'h2c'] }),
    ]);
    assert.equal(r.code, 0, r.stderr);
    client = JSON.parse(r.stdout) as WorkloadInfo;
    servers.push(a, b);
    echo = echoClient(client.outbound, 'echo');
    await untilAnsweredBy(echo, 2, (who) => who.split('-')[1]!);
  });
  after(async () => {
    echo?.close();
    await m.cleanup();
  });

  it('a rule matching the gRPC method path sends those calls to their own version', async () => {
    await route('set', 'echo', 'v1');
    await route('set', 'echo', 'v2', '--match', 'path:/meshtest.Echo/Count');
    for (let i = 0; i < 5; i++) {
      const u = await say(echo, { text: 'hi' });
      assert.match(u.reply!.who!, /^echo-v1-/);
      const streamed = await new Promise<Msg[]>((resolve, reject) => {
        const got: Msg[] = [];
        const call = echo.count({ n: 2 });
        call.on('data', (x: Msg) => got.push(x));
        call.on('error', reject);
        call.on('end', () => resolve(got));
      });
      assert.deepEqual(streamed.map((x) => x.who!.split('-')[1]), ['v2', 'v2']);
    }
    await route('clear', 'echo');
  });

  it("the client's grpc-timeout reaches the server shrunk by the route's timeout, and bounds the call itself", async () => {
    await route('set', 'echo', 'v1');
    const own = await say(echo, { text: 'deadline' }, { deadlineMs: 2000 });
    const left = Number(own.reply!.text);
    assert.ok(left > 1000 && left <= 2000, `the server's deadline is the client's: ${own.reply!.text} ms left`);
    await route('set', 'echo', 'v1', '--timeout', '400ms');
    const shrunk = await say(echo, { text: 'deadline' }, { deadlineMs: 10_000 });
    assert.ok(Number(shrunk.reply!.text) <= 400, `the route's 400 ms reaches the server: ${shrunk.reply!.text} ms left`);
    assert.equal((await say(echo, { text: 'deadline' })).reply!.text, 'none', 'no deadline is made up for a call without one');

    // A client that sends grpc-timeout but does not enforce it: the proxy ends the call DEADLINE_EXCEEDED.
    await route('clear', 'echo');
    const s = http2.connect(`http://${client.outbound}`);
    try {
      const call = (timeout: string, text: string) => new Promise<{ status: string | undefined; ms: number }>((resolve, reject) => {
        const began = Date.now();
        const st = s.request({ ':method': 'POST', ':path': '/meshtest.Echo/Say', ':authority': 'echo', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': timeout });
        let status: string | undefined;
        st.on('response', (h) => (status ??= h['grpc-status'] as string | undefined));
        st.on('trailers', (h) => (status ??= h['grpc-status'] as string | undefined));
        st.on('error', reject);
        st.on('close', () => resolve({ status, ms: Date.now() - began }));
        st.resume();
        st.end(sayFrame(text));
      });
      const late = await call('200m', 'sleep:5000');
      assert.equal(late.status, '4');
      assert.ok(late.ms < 4000, `ended at the deadline, not the reply: ${late.ms} ms`);
      for (const t of ['2S', '2000000u', '1M']) assert.equal((await call(t, 'sleep:10')).status, '0', t);
      assert.equal((await call('soon', 'sleep:10')).status, '13', 'a value that is not a grpc-timeout is left to the server, which refuses it as gRPC does');
    } finally {
      s.close();
    }
  });

  it('a deadline passing while a streamed reply is under way ends it DEADLINE_EXCEEDED in its trailers', async () => {
    await route('set', 'echo', 'v1', '--timeout', '700ms');
    const before = (await statusCounts(client.admin)).get('outbound 200 4') ?? 0;
    const got: number[] = [];
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      const call = echo.count({ n: 10, text: 'slow' });
      call.on('data', (x: Msg) => got.push(x.n!));
      call.on('error', () => {});
      call.on('status', resolve);
    });
    assert.equal(status.code, grpc.status.DEADLINE_EXCEEDED, status.details);
    assert.match(status.details, /timed out after 700 ms/);
    assert.ok(got.length >= 1 && got.length < 10, `the messages before it arrived: ${got.join(',')}`);
    assert.equal((await statusCounts(client.admin)).get('outbound 200 4'), before + 1, 'counted as the DEADLINE_EXCEEDED it ended with');
    await route('clear', 'echo');
  });

  it('retries a call answered trailers-only with a status --retry-on names, within the retry budget', async () => {
    await route('set', 'echo', 'v1', '--retries', '2');
    // Every other flaky call fails: without unavailable in --retry-on half of them reach the client failed.
    const plain = await Promise.all(Array.from({ length: 6 }, () => say(echo, { text: 'flaky:14' })));
    assert.ok(plain.some((u) => u.status.code === grpc.status.UNAVAILABLE));
    const before = Number(/^outbound_http_retries_total\{[^}]*\} (\d+)$/m.exec((await request(client.admin, { path: '/metrics' })).body)?.[1] ?? 0);
    await route('set', 'echo', 'v1', '--retries', '2', '--retry-on', 'unavailable,resource-exhausted');
    const got = await route('get', 'echo');
    assert.match(got.stdout, /2 on resource-exhausted,unavailable/);
    assert.match((await route('list')).stdout, /echo\s+1\s+v1 100%\s+0\s+2 on resource-exhausted,unavailable/);
    for (let i = 0; i < 6; i++) {
      const u = await say(echo, { text: 'flaky:14' });
      assert.equal(u.status.code, grpc.status.OK, u.status.details);
    }
    for (let i = 0; i < 4; i++) assert.equal((await say(echo, { text: 'flaky:8' })).status.code, grpc.status.OK);
    // INTERNAL is not named: it reaches the client.
    const internal = await Promise.all(Array.from({ length: 4 }, () => say(echo, { text: 'flaky:13' })));
    assert.ok(internal.some((u) => u.status.code === grpc.status.INTERNAL));
    const after_ = Number(/^outbound_http_retries_total\{[^}]*\} (\d+)$/m.exec((await request(client.admin, { path: '/metrics' })).body)?.[1] ?? 0);
    assert.ok(after_ - before >= 3, `retries counted: ${before} → ${after_}`);
    await route('clear', 'echo');
  });

  it('a fault aborts calls with a gRPC status, counted with its grpc_status', async () => {
    await route('set', 'echo', 'v1', '--fault-abort-grpc', 'unavailable@100%');
    assert.match((await route('get', 'echo')).stdout, /abort grpc 14@100%/);
    const before = (await statusCounts(client.admin)).get('outbound 503 14') ?? 0;
    for (let i = 0; i < 3; i++) {
      const u = await say(echo, { text: 'hi' });
      assert.equal(u.status.code, grpc.status.UNAVAILABLE);
      assert.match(u.status.details, /fault injected/);
    }
    assert.equal((await statusCounts(client.admin)).get('outbound 503 14'), before + 3);
    await route('set', 'echo', 'v1', '--fault-abort-grpc', '13@100%');
    assert.equal((await say(echo, { text: 'hi' })).status.code, grpc.status.INTERNAL);
    // An HTTP/1.1 caller that is not gRPC gets the HTTP status Envoy maps it to.
    assert.equal((await request(client.outbound, { headers: { host: 'echo' } })).status, 500);
    await route('clear', 'echo');
  });

  it("the proxy's own answers are counted with the grpc_status they were sent with: a denial is PERMISSION_DENIED on both sides", async () => {
    const policy = async (...args: string[]) => {
      const r = await m.cli(['policy', ...args]);
      assert.equal(r.code, 0, r.stderr);
    };
    await policy('default', 'deny');
    try {
      let last: grpc.StatusObject | undefined;
      await waitFor('the denial to reach the servers', async () => (last = (await say(echo, { text: 'hi' })).status).code === grpc.status.PERMISSION_DENIED, 20_000, 100)
        .catch((e: Error) => assert.fail(`${e.message}: ${JSON.stringify(last)}`));
      for (let i = 0; i < 3; i++) assert.equal((await say(echo, { text: 'hi' })).status.code, grpc.status.PERMISSION_DENIED);
      const out = await statusCounts(client.admin);
      assert.ok((out.get('outbound 403 7') ?? 0) >= 3, [...out].join(' | '));
      const inb = new Map<string, number>();
      // The calls were spread over both versions: either server's sidecar counted its denials.
      for (const w of servers) for (const [k, n] of await statusCounts(w.admin)) inb.set(k, (inb.get(k) ?? 0) + n);
      assert.ok([...inb.keys()].includes('inbound 403 7'), [...inb].join(' | '));
    } finally {
      await policy('default', 'allow');
    }
  });
});
