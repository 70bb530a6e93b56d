// gRPC end to end with a real gRPC stack (@grpc/grpc-js on both sides): a client workload's sidecar
// takes HTTP/2 from the client, carries each call over mesh/1 to one of three server workloads
// (`mesh run --app-protocol h2c`), whose sidecars speak h2c to the gRPC server. Every call shape,
// metadata and trailers, status codes, deadlines, large messages, and per-call balancing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import grpc from '@grpc/grpc-js';
import { TestMesh, request, waitFor, type WorkloadInfo } from './support/mesh.js';
import { GRPC_APP, echoClient, grpcCounts, say, untilAnsweredBy, type EchoClient, type Msg } from './support/grpc.js';

const MiB = 1024 * 1024;

describe('gRPC through the mesh', () => {
  const m = new TestMesh();
  let client: WorkloadInfo;
  let echo: EchoClient;
  const servers: WorkloadInfo[] = [];

  before(async () => {
    await m.install();
    const [r] = await Promise.all([
      m.cli(['run', '-d', '-o', 'json', '--name', 'client', '--', process.execPath, '-e', 'setInterval(() => {}, 1e9)']),
      ...[0, 1, 2].map(async () => servers.push(await m.run('echo', { app: GRPC_APP, extra: ['--app-protocol', 'h2c'] }))),
    ]);
    assert.equal(r.code, 0, r.stderr);
    client = JSON.parse(r.stdout) as WorkloadInfo;
    echo = echoClient(client.outbound, 'echo');
    // Ready when the client's sidecar knows all three endpoints.
    await untilAnsweredBy(echo, 3);
  });
  after(async () => {
    echo?.close();
    await m.cleanup();
  });

  // Per call, not per connection: one connection's calls go to more than one server at once. How many each
  // gets follows the servers' peak-EWMA latency, which one slow sample (a scheduling stall on a loaded machine)
  // raises for tens of seconds, as it should; so the third server is waited for over a few bursts.
  it('100 concurrent calls over one client connection are spread over the three servers', async () => {
    const burst = async (): Promise<Map<string, number>> => {
      const calls = await Promise.all(Array.from({ length: 100 }, (_, i) => say(echo, { text: `sleep:${20 + (i % 5)}` })));
      const by = new Map<string, number>();
      for (const u of calls) {
        assert.equal(u.status.code, grpc.status.OK, u.status.details);
        by.set(u.reply!.who!, (by.get(u.reply!.who!) ?? 0) + 1);
      }
      return by;
    };
    const first = await burst();
    assert.ok(first.size >= 2 && Math.max(...first.values()) <= 90, `one connection's calls spread: ${[...first].join(' ')}`);
    const seen = new Set(first.keys());
    await waitFor('every server to take calls from one connection', async () => {
      for (const who of (await burst()).keys()) seen.add(who);
      return seen.size === 3;
    }, 45_000, 100);
  });

  it('unary: the reply, its header metadata and its trailers (status, custom metadata) reach the client', async () => {
    const md = new grpc.Metadata();
    md.set('x-hello', 'world');
    const u = await say(echo, { text: 'hi', data: Buffer.from('abc') }, { md });
    assert.equal(u.err, null);
    assert.equal(u.reply!.text, 'hi');
    assert.equal(u.reply!.n, 3);
    assert.equal(u.headers!.get('x-hello-seen')[0], 'world');
    assert.equal(u.status.code, grpc.status.OK);
    assert.equal(u.status.metadata.get('x-trail')[0], `from ${u.reply!.who}`);
  });

  it('server streaming: every message in order', async () => {
    const got: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = echo.count({ n: 200 });
      call.on('data', (x: Msg) => got.push(x.n!));
      call.on('error', reject);
      call.on('end', resolve);
    });
    assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => i + 1));
  });

  it('client streaming: many messages (8 MiB in all) summed by one server', async () => {
    const reply = await new Promise<Msg>((resolve, reject) => {
      const call = echo.sum((e: grpc.ServiceError | null, r: Msg) => (e ? reject(e) : resolve(r)));
      for (let i = 1; i <= 32; i++) call.write({ n: i, data: Buffer.alloc(256 * 1024, i) });
      call.end();
    });
    assert.equal(reply.n, (32 * 33) / 2);
    assert.equal(reply.text, String(8 * MiB));
  });

  it('bidirectional: each message is answered before the client sends the next', async () => {
    const call = echo.chat();
    const replies: string[] = [];
    let next: ((m: Msg) => void) | null = null;
    call.on('data', (x: Msg) => next?.(x));
    for (let i = 0; i < 10; i++) {
      const answered = new Promise<Msg>((r) => (next = r));
      call.write({ text: `m${i}` });
      replies.push((await answered).text!);
    }
    const ended = new Promise<void>((resolve, reject) => {
      call.on('end', resolve);
      call.on('error', reject);
    });
    call.end();
    await ended;
    assert.deepEqual(replies, Array.from({ length: 10 }, (_, i) => `echo m${i}`));
  });

  it('large messages: 5 MiB up, 6 MiB down', async () => {
    const up = await say(echo, { text: 'x', data: Buffer.alloc(5 * MiB, 1) });
    assert.equal(up.reply!.n, 5 * MiB);
    const down = await say(echo, { text: `big:${6 * MiB}` });
    assert.equal(down.err, null);
    assert.equal(down.reply!.data!.length, 6 * MiB);
  });

  it('status codes, messages and trailing metadata of failed calls reach the client intact', async () => {
    for (const code of [grpc.status.INVALID_ARGUMENT, grpc.status.NOT_FOUND, grpc.status.PERMISSION_DENIED, grpc.status.UNAVAILABLE, grpc.status.INTERNAL]) {
      const u = await say(echo, { text: `fail:${code}` });
      assert.equal(u.status.code, code);
      assert.match(u.status.details, /^failed as asked by echo-v1-/);
      assert.equal(u.status.metadata.get('x-why')[0], 'asked to fail');
    }
  });

  it('deadlines: a call past its deadline ends DEADLINE_EXCEEDED, and the next calls are fine', async () => {
    const late = await say(echo, { text: 'sleep:3000' }, { deadlineMs: 300 });
    assert.equal(late.status.code, grpc.status.DEADLINE_EXCEEDED);
    const ok = await say(echo, { text: 'sleep:10' }, { deadlineMs: 5000 });
    assert.equal(ok.status.code, grpc.status.OK);
  });

  it('curl --http2-prior-knowledge through the outbound listener gets the reply and grpc-status', async (t) => {
    const curl = await new Promise<boolean>((r) => execFile('curl', ['--version'], (e) => r(e === null)));
    if (!curl) return t.skip('curl is not installed');
    // One length-prefixed message: Msg{text: "hi"}.
    const file = join(m.dir, 'say.bin');
    writeFileSync(file, Buffer.from([0, 0, 0, 0, 4, 0x0a, 0x02, 0x68, 0x69]));
    const out = await new Promise<{ code: number; stdout: Buffer }>((resolve) => execFile('curl', [
      '-sS', '--http2-prior-knowledge', '-D', '-', '-o', '-', '--max-time', '10',
      '-H', 'content-type: application/grpc', '-H', 'te: trailers', '-H', 'host: echo',
      '--data-binary', `@${file}`, `http://${client.outbound}/meshtest.Echo/Say`,
    ], { encoding: 'buffer' }, (e, stdout) => resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, stdout })));
    assert.equal(out.code, 0);
    const text = out.stdout.toString('latin1');
    assert.match(text, /^HTTP\/2 200/);
    assert.match(text, /\x0a\x02hi/);
    assert.match(text, /grpc-status: 0/);
  });

  it("the proxy's own errors reach a gRPC caller as gRPC statuses: an unknown service is UNAVAILABLE", async () => {
    const nowhere = echoClient(client.outbound, 'nosuch');
    try {
      const u = await say(nowhere, { text: 'hi' });
      assert.equal(u.status.code, grpc.status.UNAVAILABLE);
      // Not in the mesh: passed through as egress, where the name does not resolve.
      assert.match(u.status.details, /nosuch/);
    } finally {
      nowhere.close();
    }
  });

  it('an HTTP/1.1 client reaches the h2c server through the same listener', async () => {
    const r = await request(client.outbound, {
      method: 'POST', path: '/meshtest.Echo/Say',
      headers: { host: 'echo', 'content-type': 'application/grpc' },
      body: Buffer.from([0, 0, 0, 0, 4, 0x0a, 0x02, 0x68, 0x69]),
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/grpc+proto');
    assert.match(r.body, /hi/);
  });

  it('metrics classify gRPC calls by grpc-status: failed calls are failures in the sidecars and in mesh stat', async () => {
    for (let i = 0; i < 3; i++) {
      for (const code of [grpc.status.UNAVAILABLE, grpc.status.INTERNAL]) assert.equal((await say(echo, { text: `fail:${code}` })).status.code, code);
      assert.equal((await say(echo, { text: 'ok' })).status.code, grpc.status.OK);
    }
    // response_total{...,classification,status_code,grpc_status} summed by (direction, classification, grpc_status).
    const counts = (admins: string[]) => grpcCounts(admins, ['direction', 'classification']);
    const client_ = await counts([client.admin]);
    const server = await counts(servers.map((s) => s.admin));
    for (const [by, dir] of [[client_, 'outbound'], [server, 'inbound']] as const) {
      const shown = [...by].join(' | ');
      assert.ok((by.get(`${dir} failure 14`) ?? 0) >= 3, shown);
      assert.ok((by.get(`${dir} failure 13`) ?? 0) >= 3, shown);
      assert.ok((by.get(`${dir} success 0`) ?? 0) >= 3, shown);
      assert.equal([...by.keys()].filter((k) => k.includes('success') && !k.endsWith(' 0')).length, 0, shown);
    }
    // mesh authz's measured figures: the rule that let the calls in counts them by grpc-status, with their latency.
    const byRule = new Map<string, number>();
    for (const s of servers) {
      const body = (await request(s.admin, { path: '/metrics' })).body;
      for (const [, cls, n] of body.matchAll(/^inbound_http_authz_response_total\{[^}]*classification="(\w+)"[^}]*\} (\S+)$/gm)) byRule.set(cls!, (byRule.get(cls!) ?? 0) + Number(n));
      for (const [, n] of body.matchAll(/^inbound_http_authz_response_latency_ms_count\{[^}]*\} (\S+)$/gm)) byRule.set('timed', (byRule.get('timed') ?? 0) + Number(n));
    }
    assert.ok((byRule.get('failure') ?? 0) >= 6 && (byRule.get('success') ?? 0) >= 3, [...byRule].join(' | '));
    assert.ok((byRule.get('timed') ?? 0) >= 9, [...byRule].join(' | '));
    // mesh stat reads the same series: the servers' success rate is below 100%. A rate needs the counters to
    // grow between scrapes, so calls go on while it is polled.
    let out = '';
    await waitFor('mesh stat to count the failed calls', async () => {
      await say(echo, { text: `fail:${grpc.status.UNAVAILABLE}` });
      await say(echo, { text: 'ok' });
      const r = await m.cli(['stat', 'deployments', '-t', '60s', '-o', 'json']);
      assert.equal(r.code, 0, r.stderr);
      out = r.stdout;
      const row = (JSON.parse(r.stdout) as { name: string; success: number | null }[]).find((x) => x.name.startsWith('echo'));
      return row !== undefined && row.success !== null && row.success < 1;
    }, 20_000, 250).catch(() => undefined);
    const row = (JSON.parse(out) as { name: string; success: number | null }[]).find((x) => x.name.startsWith('echo'));
    assert.ok(row && row.success !== null && row.success < 1 && row.success > 0, out);
  });

  // Last: it leaves a route with a timeout behind.
  it('a route timeout ends a call with DEADLINE_EXCEEDED', async () => {
    const r = await m.cli(['route', 'set', 'echo', 'v1', '--timeout', '300ms', '--wait-timeout', '15s']);
    assert.equal(r.code, 0, r.stderr);
    const u = await say(echo, { text: 'sleep:3000' });
    assert.equal(u.status.code, grpc.status.DEADLINE_EXCEEDED);
    assert.match(u.status.details, /timeout/);
  });
});
