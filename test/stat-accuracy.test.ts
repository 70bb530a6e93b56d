// mesh stat against a load whose figures we know: a client sends 3000 requests over 30 s through
// its sidecar to a server, 10% answered 500, each after a delay spread over 105-307 ms (so the app's
// time, not the proxies', sets the percentiles); stat must agree with the client's own count.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { TestMesh, ROOT, freePort, request, waitFor, type WorkloadInfo } from './support/mesh.js';
import { LATENCY_BUCKETS_MS } from '../src/proxy/metrics.js';
import { bucketIndex, exactQuantile } from '../src/control/telemetry/quantile.js';

const TOTAL = 3000;
const RATE = 100; // per second: 30 s of load
const WINDOW_S = 45;

interface JsonRow { name: string; meshed: string; success: number | null; rps: number | null; latency_ms_p50: number | null; latency_ms_p99: number | null; tcp_open_connections: number | null }

describe('mesh stat accuracy under a known load', () => {
  const m = new TestMesh();
  let client: WorkloadInfo;

  before(async () => {
    await m.install(['--scrape-interval', '1s']);
    const latencyApp = async () => {
      const r = await m.cli(['run', '-d', '-o', 'json', '--name', 'server', '--port', String(await freePort()), '--', process.execPath, join(ROOT, 'test', 'fixtures', 'latency-app.mjs')]);
      if (r.code !== 0) throw new Error(`run server failed: ${r.stderr}`);
      return JSON.parse(r.stdout) as WorkloadInfo;
    };
    await latencyApp();
    client = await m.run('client');
  });
  after(() => m.cleanup());

  it('agrees with the client on success rate and RPS within 2%, and on p50/p99 within one bucket', async (t) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    let sent = 0;
    let ok = 0;
    const latencies: number[] = [];
    const send = (status: number, delayMs: number) => new Promise<void>((resolve, reject) => {
      const [host, port] = client.outbound.split(':');
      const t0 = performance.now();
      sent++;
      const req = http.request({ host, port: Number(port), path: '/load', agent, headers: { host: 'server', 'x-status': String(status), 'x-delay-ms': String(delayMs) } }, (res) => {
        latencies.push(performance.now() - t0);
        if (res.statusCode! < 500) ok++;
        res.resume();
        res.on('end', resolve);
      });
      req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
      req.on('error', reject);
      req.end();
    });
    try {
      // The first requests wait for the client's sidecar to learn about the server; they count too.
      await waitFor('the client to reach the server', async () => (await request(client.outbound, { headers: { host: 'server' } })).status === 200, 20_000, 100);
      sent++;
      ok++;
      const start = performance.now();
      const pending: Promise<void>[] = [];
      for (let i = 0; i < TOTAL; i++) {
        const due = start + (i * 1000) / RATE;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        // Delays spread evenly over 105-307 ms: p50 near 206 ms and p99 near 305 ms, each low in a wide
        // bucket, which leaves room for what the client's own path adds (its sidecar, the mTLS hop, and
        // this process's event loop), tens of ms when other tests share the CPU.
        pending.push(send(i % 10 === 9 ? 500 : 200, 105 + ((i * 7919) % 2021) / 10));
      }
      await Promise.all(pending);
      const loadSeconds = (performance.now() - start) / 1000;
      const clientSuccess = ok / sent;
      const clientRps = sent / WINDOW_S;
      const p50 = exactQuantile(0.5, latencies);
      const p99 = exactQuantile(0.99, latencies);
      const buckets = (statMs: number | null, clientMs: number) => statMs === null ? Infinity : Math.abs(bucketIndex(statMs, LATENCY_BUCKETS_MS) - bucketIndex(clientMs, LATENCY_BUCKETS_MS));
      const agrees = (x: JsonRow) => x.success !== null && x.rps !== null && Math.abs(x.success - clientSuccess) / clientSuccess < 0.02 &&
        Math.abs(x.rps - clientRps) / clientRps < 0.02 && buckets(x.latency_ms_p50, p50) <= 1 && buckets(x.latency_ms_p99, p99) <= 1;
      // The control plane scrapes every second: poll (bounded) until a scrape after the last response shows,
      // then every figure must hold on that one reading.
      let out = '';
      let rows: JsonRow[] = [];
      await waitFor('stat to agree with the client', async () => {
        const r = await m.cli(['stat', 'deployments', '-t', `${WINDOW_S}s`, '-o', 'json']);
        assert.equal(r.code, 0, r.stderr);
        out = r.stdout;
        rows = JSON.parse(r.stdout) as JsonRow[];
        const row = rows.find((x) => x.name === 'server-v1');
        return row && agrees(row);
      }, 20_000, 250).catch(() => undefined);
      const row = rows.find((x) => x.name === 'server-v1');
      assert.ok(row, out);
      const clientRow = rows.find((x) => x.name === 'client-v1');
      assert.equal(clientRow?.rps, null, 'the client receives no traffic');

      t.diagnostic(`client: ${sent} requests in ${loadSeconds.toFixed(1)} s, success ${(clientSuccess * 100).toFixed(2)}%, ${clientRps.toFixed(3)} rps over ${WINDOW_S} s, p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`);
      t.diagnostic(`stat:   success ${((row.success ?? 0) * 100).toFixed(2)}%, ${row.rps} rps, p50 ${row.latency_ms_p50} ms, p99 ${row.latency_ms_p99} ms, tcp ${row.tcp_open_connections}`);
      assert.equal(row.meshed, '1/1');
      assert.ok(Math.abs(row.success! - clientSuccess) / clientSuccess < 0.02, `success ${row.success} vs ${clientSuccess}`);
      assert.ok(Math.abs(row.rps! - clientRps) / clientRps < 0.02, `rps ${row.rps} vs ${clientRps}`);
      const within = (statMs: number | null, clientMs: number, what: string) => {
        assert.ok(statMs !== null, `${what} present`);
        const d = buckets(statMs, clientMs);
        assert.ok(d <= 1, `${what}: stat ${statMs} ms and client ${clientMs.toFixed(2)} ms are ${d} buckets apart`);
      };
      within(row.latency_ms_p50, p50, 'p50');
      within(row.latency_ms_p99, p99, 'p99');
      assert.ok((row.tcp_open_connections ?? 0) >= 1, 'the client sidecar keeps a connection open');
    } finally {
      agent.destroy();
    }
  });
});
