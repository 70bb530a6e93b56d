// mesh stat and mesh edges on the bookinfo sample, from the control plane's scrapes and from a real
// Prometheus (Debian's prometheus binary, started here on a free loopback port) scraping the
// config `mesh prometheus-config` prints: both must show the same table.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestMesh, waitFor } from './support/mesh.js';
import { NO_PROMETHEUS, startPrometheus, type RunningPrometheus } from './support/prometheus.js';
import { LATENCY_BUCKETS_MS } from '../src/proxy/metrics.js';
import { bucketIndex } from '../src/control/telemetry/quantile.js';

interface JsonRow { namespace: string; name: string; meshed: string; success: number | null; rps: number | null; latency_ms_p50: number | null; latency_ms_p95: number | null; latency_ms_p99: number | null; tcp_open_connections: number | null; protocol: string | null }
interface JsonEdge { src: string; dst: string; src_namespace: string; dst_namespace: string; client_id: string; server_id: string; secured: boolean; protocol: string }

const DEPLOYMENTS = ['details-v1', 'productpage-v1', 'ratings-v1', 'reviews-v1', 'reviews-v2', 'reviews-v3'];
const EDGES = ['ingress→productpage-v1', 'productpage-v1→details-v1', 'productpage-v1→reviews-v1', 'productpage-v1→reviews-v2',
  'productpage-v1→reviews-v3', 'reviews-v2→ratings-v1', 'reviews-v3→ratings-v1'];

describe('mesh stat and edges on the sample', () => {
  const m = new TestMesh();
  const dir = mkdtempSync(join(tmpdir(), 'mesh-prometheus-'));
  let prom: RunningPrometheus | undefined;

  before(async () => {
    await m.install(['--scrape-interval', '1s']);
    const r = await m.cli(['demo', '--ingress-port', '0', '--rate', '20'], { timeoutMs: 90_000 });
    if (r.code !== 0) throw new Error(`demo failed: ${r.stderr}`);
    // Prometheus starts now, so that its window fills while the control plane's is tested.
    if (!NO_PROMETHEUS) {
      const cfg = await m.cli(['prometheus-config', '--scrape-interval', '1s']);
      assert.equal(cfg.code, 0, cfg.stderr);
      writeFileSync(join(dir, 'prometheus.yml'), cfg.stdout);
      prom = await startPrometheus(join(dir, 'prometheus.yml'), dir);
    }
  });
  after(async () => {
    await prom?.stop();
    rmSync(dir, { recursive: true, force: true });
    await m.cleanup();
  });

  const stat = async (args: string[] = []) => {
    const r = await m.cli(['stat', 'deployments', '-o', 'json', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as JsonRow[];
  };
  const edges = async (args: string[] = []) => {
    const r = await m.cli(['edges', 'deployments', '-o', 'json', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as JsonEdge[];
  };

  it('lists every deployment of the sample with figures', async () => {
    // Rates agree once the 15 s window holds 15 s of every series: wait for that, bounded.
    const agree = (rows: JsonRow[]) => {
      const rps = (n: string) => rows.find((r) => r.name === n)?.rps ?? 0;
      const reviews = rps('reviews-v1') + rps('reviews-v2') + rps('reviews-v3');
      return Math.abs(rps('ingress') - rps('productpage-v1')) <= 0.15 * rps('ingress') && Math.abs(reviews - rps('productpage-v1')) <= 0.15 * reviews;
    };
    const rows = await waitFor('traffic at every deployment, with rates that agree', async () => {
      const rows = await stat(['-t', '15s']);
      // The window counts from each proxy's start: the demo's own start-up probes (which fail until the sample is
      // up) leave it after 15 s.
      const settled = rows.find((r) => r.name === 'ingress')?.success === 1;
      return DEPLOYMENTS.every((d) => (rows.find((r) => r.name === d)?.rps ?? 0) > 0) && agree(rows) && settled ? rows : undefined;
    }, 60_000, 1000) as JsonRow[];
    assert.deepEqual(rows.map((r) => r.name), ['details-v1', 'ingress', 'productpage-v1', 'ratings-v1', 'reviews-v1', 'reviews-v2', 'reviews-v3']);
    for (const r of rows) {
      assert.equal(r.meshed, '1/1', r.name);
      assert.equal(r.success, 1, `${r.name}: the sample answers every request`);
      assert.ok(r.latency_ms_p50! > 0 && r.latency_ms_p50! <= r.latency_ms_p95! && r.latency_ms_p95! <= r.latency_ms_p99!, `${r.name} percentiles in order`);
      assert.ok(r.tcp_open_connections! >= 1, `${r.name} has connections`);
      // ratings serves reviews over gRPC; every other hop is HTTP/1.1.
      assert.equal(r.protocol, r.name === 'ratings-v1' ? 'grpc' : 'http', r.name);
    }
    // Every page load through the ingress reaches productpage, and productpage asks details each time.
    const by = (n: string) => rows.find((r) => r.name === n)!;
    assert.ok(Math.abs(by('ingress').rps! - by('productpage-v1').rps!) <= 0.15 * by('ingress').rps!, 'ingress and productpage see the same requests');
    const reviews = ['reviews-v1', 'reviews-v2', 'reviews-v3'].reduce((n, d) => n + by(d).rps!, 0);
    assert.ok(Math.abs(reviews - by('productpage-v1').rps!) <= 0.15 * reviews, 'the reviews versions share productpage\'s requests');
  });

  it('shows the edges between them, every one over mutual TLS with both identities', async () => {
    const list = await waitFor('every edge', async () => {
      const list = await edges(['-t', '30s']);
      return EDGES.every((e) => list.some((x) => `${x.src}→${x.dst}` === e)) ? list : undefined;
    }, 30_000, 1000) as JsonEdge[];
    assert.deepEqual(list.map((e) => `${e.src}→${e.dst}`), EDGES, 'and no others (reviews-v1 calls no ratings)');
    for (const e of list) {
      assert.ok(e.secured, `${e.src}→${e.dst} secured`);
      const svc = (d: string) => d.replace(/-v\d+$/, '');
      assert.equal(e.client_id, `spiffe://cluster.local/ns/default/sa/${svc(e.src)}`);
      assert.equal(e.server_id, `spiffe://cluster.local/ns/default/sa/${svc(e.dst)}`);
      assert.equal(e.protocol, e.dst === 'ratings-v1' ? 'grpc' : 'http', `${e.src}→${e.dst}`);
    }
    const table = await m.cli(['edges', 'deploy']);
    assert.match(table.stdout, /^SRC\s+DST\s+SRC_NS\s+DST_NS\s+SECURED\s+PROTOCOL\n/);
    assert.match(table.stdout, /\ningress\s+productpage-v1\s+default\s+default\s+√\s+http\n/);
    assert.match(table.stdout, /\nreviews-v2\s+ratings-v1\s+default\s+default\s+√\s+grpc\n/);
  });

  it('narrows to one side of the traffic with --from and --to', async () => {
    const from = await stat(['--from', 'productpage-v1', '-t', '30s']);
    assert.deepEqual(from.map((r) => r.name), ['details-v1', 'reviews-v1', 'reviews-v2', 'reviews-v3']);
    const to = await stat(['--to', 'svc/ratings', '-t', '30s']);
    assert.deepEqual(to.map((r) => r.name), ['reviews-v2', 'reviews-v3']);
    const svc = await m.cli(['stat', 'svc', 'reviews', '-o', 'json']);
    assert.deepEqual((JSON.parse(svc.stdout) as JsonRow[]).map((r) => [r.name, r.meshed]), [['reviews', '3/3']]);
  });

  describe('from a real Prometheus', { skip: NO_PROMETHEUS }, () => {
    let url = '';

    before(async () => {
      assert.ok(prom, 'Prometheus started with the sample');
      url = prom.url;
      const scraped = async (expr: string) => Number((await prom!.query(expr))[0]?.value[1] ?? 0);
      await waitFor('Prometheus to scrape every proxy', async () => (await scraped('count(up{job="mesh-proxy"} == 1)')) === 7, 30_000, 500)
        .catch((err: Error) => { throw new Error(`${err.message}\n${prom!.log()}`); });
      // Then enough samples for a 20 s window: every proxy's series goes back 22 s (the time since its first scrape).
      await waitFor('22 s of samples from every proxy', async () =>
        (await scraped('time() - max(min_over_time(timestamp(up{job="mesh-proxy"})[5m:1s]))')) >= 22, 60_000, 500);
    });

    it('gives the same table as the control plane', async (t) => {
      const [local, remote] = await Promise.all([stat(['-t', '20s']), stat(['-t', '20s', '--prometheus', url])]);
      const brief = (rows: JsonRow[]) => JSON.stringify(rows.map((r) => [r.name, r.rps, r.success, r.latency_ms_p50, r.tcp_open_connections]));
      t.diagnostic(`control plane (name, rps, success, p50, tcp): ${brief(local)}`);
      t.diagnostic(`prometheus    (name, rps, success, p50, tcp): ${brief(remote)}`);
      assert.deepEqual(remote.map((r) => [r.name, r.meshed]), local.map((r) => [r.name, r.meshed]));
      for (const l of local) {
        const p = remote.find((r) => r.name === l.name)!;
        assert.ok(l.rps !== null && p.rps !== null, `${l.name} has traffic in both`);
        assert.ok(Math.abs(l.rps - p.rps) <= Math.max(0.2 * l.rps, 0.5), `${l.name}: ${l.rps} vs ${p.rps} rps`);
        assert.ok(Math.abs(l.success! - p.success!) <= 0.02, `${l.name}: success ${l.success} vs ${p.success}`);
        const d = Math.abs(bucketIndex(l.latency_ms_p50!, LATENCY_BUCKETS_MS) - bucketIndex(p.latency_ms_p50!, LATENCY_BUCKETS_MS));
        assert.ok(d <= 1, `${l.name}: p50 ${l.latency_ms_p50} vs ${p.latency_ms_p50} ms`);
        // A gauge read at two slightly different scrapes: pools open and close connections under load.
        const [lc, pc] = [l.tcp_open_connections!, p.tcp_open_connections!];
        assert.ok(lc >= 1 && pc >= 1 && Math.abs(lc - pc) <= Math.max(2, 0.5 * Math.max(lc, pc)), `${l.name}: ${lc} vs ${pc} connections`);
      }
    });

    it('gives the same edges as the control plane', async () => {
      const [local, remote] = await Promise.all([edges(['-t', '20s']), edges(['-t', '20s', '--prometheus', url])]);
      const key = (e: JsonEdge) => `${e.src}→${e.dst} ${e.secured} ${e.client_id} ${e.server_id} ${e.protocol}`;
      assert.deepEqual(remote.map(key), local.map(key));
    });
  });
});
