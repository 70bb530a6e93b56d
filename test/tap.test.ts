// mesh tap end to end: real sidecars report the requests a tap selects, through the control plane, to the CLI.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestMesh, request, waitFor, assertOneLineError, type WorkloadInfo } from './support/mesh.js';
import { connectVia, exchange } from './support/tcp.js';
import { StateDir } from '../src/platform/local/state.js';
import { adminClient } from '../src/platform/local/control.js';

/** Sends requests client → web at about `rps` until stopped; returns how many were sent. */
export function load(client: WorkloadInfo, rps: number, headers: Record<string, string> = {}, path = '/hello'): () => Promise<number> {
  let sent = 0;
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      const started = Date.now();
      await Promise.all(Array.from({ length: Math.max(1, Math.round(rps / 10)) }, () =>
        request(client.outbound, { path, headers: { host: 'web', ...headers } }).then(() => sent++, () => {})));
      await new Promise((r) => setTimeout(r, Math.max(0, 100 - (Date.now() - started))));
    }
  })();
  return async () => {
    stopped = true;
    await done;
    return sent;
  };
}

describe('mesh tap', () => {
  const m = new TestMesh();
  let client: WorkloadInfo;
  let intruder: WorkloadInfo;

  before(async () => {
    await m.install(['--scrape-interval', '1s']);
    [, client] = await Promise.all([m.run('web'), m.run('client')]);
    await waitFor('traffic to flow', async () => (await request(client.outbound, { headers: { host: 'web' } })).status === 200);
  });
  after(() => m.cleanup());

  it('streams the requests of a deployment with identities, status and latency', async () => {
    const stop = load(client, 20);
    const r = await m.cli(['tap', 'deploy/web-v1', '--count', '4', '--duration', '20s'], { timeoutMs: 30_000 });
    await stop();
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.ok(lines.length >= 8, r.stdout);
    assert.match(lines[0]!, /^req id=web-\S+ proxy=in src=ns\/default\/sa\/client dst=ns\/default\/sa\/web tls=true :method=GET :authority=web :path=\/hello$/);
    assert.match(lines[1]!, /^rsp .* :status=200 latency=\d+µs duration=\d+µs response-length=\d+B$/);
  });

  it('taps the outbound side with --to and redacts secrets in -o json', async () => {
    const stop = load(client, 20, { authorization: 'Bearer s3cret', cookie: 'session=s3cret', 'x-trace-me': 'visible' });
    const r = await m.cli(['tap', 'deploy/client-v1', '--to', 'deploy/web-v1', '--path', '/hello', '--method', 'get', '-o', 'json', '--count', '3', '--duration', '20s'], { timeoutMs: 30_000 });
    await stop();
    assert.equal(r.code, 0, r.stderr);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(events.length >= 3);
    for (const e of events) {
      assert.equal(e.direction, 'outbound');
      assert.equal(e.tls, true);
      assert.match(e.dst, /\/sa\/web$/);
      const h = Object.fromEntries(e.requestHeaders.map(([k, v]: string[]) => [k.toLowerCase(), v]));
      assert.equal(h.authorization, '[redacted]');
      assert.equal(h.cookie, '[redacted]');
      assert.equal(h['x-trace-me'], 'visible');
      assert.ok(Array.isArray(e.responseHeaders));
    }
    assert.doesNotMatch(r.stdout, /s3cret/);
  });

  it('sends at most --max-rps requests per second from each proxy', async () => {
    const tapped = m.cli(['tap', 'deploy/web-v1', '-o', 'json', '--max-rps', '5', '--duration', '4s'], { timeoutMs: 30_000 });
    // The tap reaches the proxy through its long-poll; load starts once the first event shows it is on.
    const stop = load(client, 100);
    const tap = await tapped;
    const sent = await stop();
    assert.equal(tap.code, 0, tap.stderr);
    const events = tap.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { at: number });
    assert.ok(events.length > 0, 'some requests were tapped');
    assert.ok(sent > 200, `load sent ${sent}`);
    // Per proxy, 5 per rolling second: over 4 s at most 5 × 5 windows.
    assert.ok(events.length <= 25, `${events.length} events over 4 s at --max-rps 5`);
  });

  it('is refused without the admin credential', async () => {
    const c = adminClient(new StateDir(m.dir));
    try {
      for (const bearer of [undefined, 'wrong']) {
        const r = await c.request('GET', '/v1/tap?target=deploy/web-v1', undefined, { bearer });
        assert.equal(r.status, 401);
      }
    } finally {
      c.close();
    }
  });

  it('refuses a bad resource or --max-rps in one line', async () => {
    assertOneLineError(await m.cli(['tap', 'web']), /TYPE\/NAME/);
    assertOneLineError(await m.cli(['tap', 'deploy/web-v1', '--max-rps', '0']), /--max-rps/);
  });

  it('mesh top shows the busiest paths with counts, latencies and success rate', async () => {
    const stop = load(client, 30);
    const r = await m.cli(['top', 'deploy/web-v1', '-o', 'json', '--duration', '3s', '--refresh', '1s'], { timeoutMs: 30_000 });
    await stop();
    assert.equal(r.code, 0, r.stderr);
    const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
    const row = last.rows.find((x: { path: string }) => x.path === '/hello');
    assert.ok(row, r.stdout);
    assert.match(row.source, /client/);
    assert.match(row.destination, /^web-/);
    assert.equal(row.method, 'GET');
    assert.ok(row.count > 5 && row.successes === row.count && row.bestUs <= row.worstUs, JSON.stringify(row));
  });

  it('mesh authz shows which rule lets each client in, and what default deny refuses', async () => {
    assert.equal((await m.cli(['policy', 'default', 'deny'])).code, 0);
    assert.equal((await m.cli(['policy', 'allow', '--from', 'client', '--to', 'web'])).code, 0);
    intruder = await m.run('intruder');
    const stops = [load(client, 20), load(intruder, 10)];
    try {
      const rows = (await waitFor('authz rows for the rule and the default', async () => {
        const r = await m.cli(['authz', 'deploy/web-v1', '-o', 'json', '-t', '10s']);
        const rows = JSON.parse(r.stdout).rows as { rule: string; allowedRps: number; deniedRps: number; clients: string[]; success: number }[];
        const rule = rows.find((x) => x.rule.startsWith('rule 1 of policy default/'));
        const deny = rows.find((x) => x.rule === 'default deny');
        return rule && rule.allowedRps > 0 && deny && deny.deniedRps > 0 ? { rule, deny } : undefined;
      }, 30_000, 500))!;
      assert.deepEqual(rows.rule.clients.map((c) => c.split('/').pop()), ['client']);
      assert.equal(rows.rule.success, 1);
      // The rule's latency is measured by the sidecar per rule, not estimated from its clients'.
      const measured = await waitFor('the rule\'s latency measured', async () => {
        const r = JSON.parse((await m.cli(['authz', 'deploy/web-v1', '-o', 'json', '-t', '10s'])).stdout).rows.find((x: { rule: string }) => x.rule === rows.rule.rule);
        return r?.latency === 'measured' && r.latency_ms_p50 > 0 ? r : undefined;
      }, 20_000, 500);
      assert.ok(measured.latency_ms_p50 <= measured.latency_ms_p99, JSON.stringify(measured));
      assert.deepEqual(rows.deny.clients.map((c) => c.split('/').pop()), ['intruder']);
      const table = await m.cli(['authz', 'deploy/web-v1', '-t', '10s']);
      assert.match(table.stdout, /^RULE\s+CLIENTS\s+ALLOWED_RPS\s+DENIED_RPS/);
      assert.match(table.stdout, /default deny\s+ns\/default\/sa\/intruder/);
    } finally {
      for (const s of stops) await s();
    }
  });

  it('shows a request authorization denied, with the policy\'s reason', async () => {
    // After the test above: default deny, only client is allowed to web.
    const stop = load(intruder, 10);
    const r = await m.cli(['tap', 'deploy/web-v1', '-o', 'json', '--count', '3', '--duration', '20s'], { timeoutMs: 30_000 });
    await stop();
    assert.equal(r.code, 0, r.stderr);
    const denied = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).find((e) => e.status === 403);
    assert.ok(denied, r.stdout);
    assert.equal(denied.error, 'denied');
    assert.match(denied.src, /\/sa\/intruder$/);
    assert.match(denied.reason, /denied by default/);
    const lines = await m.cli(['tap', 'deploy/intruder-v1', '--to', 'deploy/web-v1', '--count', '1', '--duration', '20s'], { timeoutMs: 30_000 });
    assert.equal(lines.code, 0, lines.stderr);
  });

  it('shows a TCP connection authorization refused, as a CONNECT with the policy\'s reason', async () => {
    // Still default deny: the intruder's connections to a TCP app are refused at the app's sidecar.
    const vault = await m.run('vault', { app: new URL('../../test/fixtures/tcp-echo-app.mjs', import.meta.url).pathname });
    let done = false;
    const tapped = m.cli(['tap', 'deploy/vault-v1', '-o', 'json', '--count', '1', '--duration', '20s'], { timeoutMs: 30_000 }).finally(() => (done = true));
    // Connect until the tap (which reaches the sidecar through its long-poll) has reported one.
    const deadline = Date.now() + 30_000;
    while (!done && Date.now() < deadline) {
      const c = await connectVia(intruder.outbound, `vault:${vault.appPort}`).catch(() => undefined);
      if (c?.status === 200) assert.equal((await exchange(c.sock, 'let me in', 5_000)).data.length, 0);
      else {
        c?.sock.destroy();
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    const r = await tapped;
    assert.equal(r.code, 0, r.stderr);
    const e = JSON.parse(r.stdout.trim().split('\n')[0]!);
    assert.equal(e.method, 'CONNECT');
    assert.equal(e.authority, `vault:${vault.appPort}`);
    assert.equal(e.status, 403);
    assert.equal(e.error, 'denied');
    assert.match(e.src, /\/sa\/intruder$/);
    assert.match(e.dst, /\/sa\/vault$/);
    assert.match(e.reason, /denied by default/);
  });

  it('sidecars export spans to the control plane without a flag, a few new traces a second each', async () => {
    const c = adminClient(new StateDir(m.dir));
    try {
      const started = Date.now();
      const stop = load(client, 50);
      type Listed = { traces: { services: string[]; startMs: number }[] };
      const recent = async () => (await c.request<Listed>('GET', '/v1/traces', undefined, { bearer: new StateDir(m.dir).adminToken() })).body.traces.filter((t) => t.startMs >= started);
      // Loaded for 3 s at least, until a trace from client to web started meanwhile has arrived.
      await waitFor('a recent trace from client to web', async () => Date.now() - started >= 3000 && (await recent()).some((t) => t.services.includes('client') && t.services.includes('web')), 20_000, 250);
      const sent = await stop();
      const seconds = (Date.now() - started) / 1000;
      const traces = await recent();
      // The client's sidecar starts every trace here: at most 2 recorded a second, of the ~50 requests a second it sent.
      assert.ok(traces.length <= 2 * Math.ceil(seconds + 1), `${traces.length} traces in ${seconds.toFixed(1)} s (${sent} requests)`);
      assert.ok(sent > traces.length * 5, `${sent} requests, ${traces.length} traces`);
    } finally {
      c.close();
    }
  });
});
