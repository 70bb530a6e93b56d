// Slow clients against real sidecars: a thousand request bodies that never finish, heads that never
// end, TLS handshakes that never start. They get 408 (or are cut) within the read timeouts, one
// client address cannot take every in-flight slot of the ingress, and another client is served
// throughout. Timeouts are set short here (MESH_PROXY_*_TIMEOUT_MS) so the test takes seconds.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { TestMesh, ECHO_APP, freePort, waitFor, type WorkloadInfo } from './support/mesh.js';
import { peakWhile, procStats } from './support/mux-bed.js';

const TIMEOUT_MS = 1500;
const env = { MESH_PROXY_HEAD_TIMEOUT_MS: String(TIMEOUT_MS), MESH_PROXY_BODY_TIMEOUT_MS: String(TIMEOUT_MS), MESH_PROXY_HANDSHAKE_TIMEOUT_MS: String(TIMEOUT_MS) };

/** A client connection from `from` (another loopback address is another client) that sends `text` and waits. */
function slow(port: number, from: string, text: string): Promise<{ reply: string; closedAfterMs: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port, localAddress: from }, () => sock.write(text));
    let reply = '';
    sock.on('data', (d) => (reply += d.toString('latin1')));
    sock.on('error', () => {});
    sock.on('close', () => resolve({ reply, closedAfterMs: Date.now() - t0 }));
    sock.setTimeout(20_000, () => sock.destroy());
  });
}

/** GETs through the ingress from `from`; the statuses that were not 200. */
async function victim(port: number, from: string, n: number): Promise<string[]> {
  const bad: string[] = [];
  const agent = new http.Agent({ keepAlive: true, localAddress: from } as http.AgentOptions);
  try {
    for (let i = 0; i < n; i++) {
      const status = await new Promise<string>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/', headers: { host: 'web' }, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(String(res.statusCode)));
        });
        req.setTimeout(5_000, () => req.destroy(new Error('timed out')));
        req.on('error', (e) => resolve(e.message));
      });
      if (status !== '200') bad.push(status);
    }
  } finally {
    agent.destroy();
  }
  return bad;
}

describe('slow clients', () => {
  const m = new TestMesh();
  let web: WorkloadInfo;
  let ingress: WorkloadInfo;
  let port = 0;

  before(async () => {
    await m.install();
    web = await m.run('web', { app: ECHO_APP, env });
    port = await freePort();
    const r = await m.cli(['ingress', '-d', '-o', 'json', '--port', String(port), '--service', 'web'], { env });
    assert.equal(r.code, 0, r.stderr);
    ingress = JSON.parse(r.stdout) as WorkloadInfo;
    await waitFor('the ingress to reach web', async () => (await victim(port, '127.0.0.3', 1)).length === 0, 20_000);
  });
  after(async () => {
    await m.cleanup();
  });

  it('a thousand bodies that never finish get 408 or 429, and take no more than one client\'s share of the ingress', { timeout: 60_000 }, async () => {
    const base = procStats(ingress.pid);
    let results: Array<{ reply: string; closedAfterMs: number }> = [];
    let failed: string[] = [];
    const peak = await peakWhile(ingress.pid, async () => {
      const attackers = Array.from({ length: 1000 }, () => slow(port, '127.0.0.2', 'POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 1000\r\n\r\n0123456789'));
      // While they hang, another client address is served.
      await waitFor('the ingress to hold the slow bodies', () => procStats(ingress.pid).fds > base.fds + 500, 10_000, 20);
      failed = await victim(port, '127.0.0.3', 50);
      results = await Promise.all(attackers);
    });
    console.log(`# abuse 1000 slow bodies on the ingress: RSS ${base.rssMiB} -> peak ${peak.rssMiB} MiB (+${peak.rssMiB - base.rssMiB}), fds ${base.fds} -> peak ${peak.fds} (+${peak.fds - base.fds})`);
    assert.deepEqual(failed, [], 'the other client is served while the slow bodies hang');
    const status = (r: { reply: string }) => /^HTTP\/1\.1 (\d+)/.exec(r.reply)?.[1] ?? 'none';
    const by = new Map<string, number>();
    for (const r of results) by.set(status(r), (by.get(status(r)) ?? 0) + 1);
    // At most the client's share (100) reached an endpoint; the rest were refused at once.
    assert.ok((by.get('429') ?? 0) >= 1000 - 100, JSON.stringify([...by]));
    assert.ok((by.get('408') ?? 0) >= 1, JSON.stringify([...by]));
    assert.ok(results.every((r) => r.closedAfterMs < 15_000), `slowest closed after ${Math.max(...results.map((r) => r.closedAfterMs))} ms`);
    assert.ok(peak.rssMiB - base.rssMiB < 64, `RSS grew by ${peak.rssMiB - base.rssMiB} MiB`);
    await waitFor('the ingress to close them all', () => procStats(ingress.pid).fds <= base.fds + 4, 10_000);
  });

  it('a head that never ends gets 408 after the head timeout, even one trickled a byte at a time', { timeout: 30_000 }, async () => {
    const partial = 'GET / HTTP/1.1\r\nHost: web\r\nX-Slow: 1\r\n';
    const onIngress = await slow(port, '127.0.0.2', partial);
    assert.match(onIngress.reply, /^HTTP\/1\.1 408 /);
    assert.ok(onIngress.closedAfterMs >= TIMEOUT_MS - 100 && onIngress.closedAfterMs < 10_000, `closed after ${onIngress.closedAfterMs} ms`);
    // A head trickled a byte at a time is timed from its first byte, not from the last.
    const t0 = Date.now();
    const trickle = await new Promise<string>((resolve) => {
      const sock = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
      let reply = '';
      let i = 0;
      const timer = setInterval(() => !sock.destroyed && sock.write(partial[i++ % partial.length]!), 200);
      sock.on('data', (d) => (reply += d.toString('latin1')));
      sock.on('error', () => {});
      sock.on('close', () => {
        clearInterval(timer);
        resolve(reply);
      });
    });
    assert.match(trickle, /^HTTP\/1\.1 408 /);
    // Timed from the last byte it would never end (a byte comes every 200 ms); Node's default would be 60 s.
    assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`);
  });

  it('drops a connection to the inbound mTLS port that never completes its handshake', { timeout: 30_000 }, async () => {
    const [host, p] = web.inbound.split(':') as [string, string];
    const closedAfter = await new Promise<number>((resolve) => {
      const t0 = Date.now();
      // The first byte of a TLS record, then silence.
      const sock = net.connect({ host, port: Number(p) }, () => sock.write(Buffer.from([0x16, 0x03, 0x01])));
      sock.on('error', () => {});
      sock.on('close', () => resolve(Date.now() - t0));
      sock.setTimeout(20_000, () => sock.destroy());
    });
    // Node's default handshake timeout is 120 s.
    assert.ok(closedAfter < 10_000, `closed after ${closedAfter} ms`);
  });
});
