// What mesh stat, mesh edges and mesh prometheus-config print, against reviewed golden files
// (test/golden/*.txt; regenerate with UPDATE_GOLDEN=1 npm test and review the diff).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './support/mesh.js';
import type { Edge, StatRow } from '../src/api/telemetry.js';
import { edgesJson, formatLatency, renderEdgesTable, renderStatTable, statJson } from '../src/ui/stat.js';
import { renderPrometheusConfig, fileSdTargets } from '../src/control/telemetry/prometheus.js';
import type { ScrapeTarget } from '../src/control/telemetry/source.js';

const GOLDEN = join(ROOT, 'test', 'golden');

function golden(name: string, actual: string): void {
  const path = join(GOLDEN, name);
  if (process.env.UPDATE_GOLDEN) {
    mkdirSync(GOLDEN, { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  let expected: string;
  try {
    expected = readFileSync(path, 'utf8');
  } catch {
    assert.fail(`golden file ${name} is missing: run UPDATE_GOLDEN=1 npm test and review it`);
  }
  assert.equal(actual, expected, `${name} differs from its golden file (UPDATE_GOLDEN=1 regenerates it)`);
}

const base = { kind: 'deployment' as const, meshed: '1/1', tcp_read_bytes_rate: null, tcp_write_bytes_rate: null };
const rows: StatRow[] = [
  { ...base, namespace: 'default', name: 'details-v1', success: 1, rps: 2, latency_ms_p50: 0.75, latency_ms_p95: 3, latency_ms_p99: 9.34, tcp_open_connections: 3, tcp_read_bytes_rate: 812.25, tcp_write_bytes_rate: 1530.5, protocol: 'grpc' },
  { ...base, namespace: 'default', name: 'ingress', success: 0.98765, rps: 10.04, latency_ms_p50: 12.4, latency_ms_p95: 48.9, latency_ms_p99: 151, tcp_open_connections: 1, tcp_read_bytes_rate: 0.5, tcp_write_bytes_rate: 2_400_000, protocol: 'http' },
  { ...base, namespace: 'default', name: 'reviews-v3', meshed: '2/2', success: null, rps: null, latency_ms_p50: null, latency_ms_p95: null, latency_ms_p99: null, tcp_open_connections: null },
  { ...base, namespace: 'shop', name: 'cart-v1', success: 0.5, rps: 0.0166, latency_ms_p50: 1, latency_ms_p95: 2.5, latency_ms_p99: 3, tcp_open_connections: 0 },
];
const edges: Edge[] = [
  { src: 'ingress', dst: 'productpage-v1', src_namespace: 'default', dst_namespace: 'default', client_id: 'spiffe://cluster.local/ns/default/sa/ingress', server_id: 'spiffe://cluster.local/ns/default/sa/productpage', secured: true, rps: 1.00001, tcp_connections: 0, protocol: 'http' },
  { src: 'productpage-v1', dst: 'reviews-v2', src_namespace: 'default', dst_namespace: 'default', client_id: 'spiffe://cluster.local/ns/default/sa/productpage', server_id: 'spiffe://cluster.local/ns/default/sa/reviews', secured: true, rps: 0.33, tcp_connections: 2, protocol: 'grpc,http,tcp' },
  { src: 'legacy', dst: 'cart-v1', src_namespace: 'default', dst_namespace: 'shop', client_id: '', server_id: '', secured: false, rps: 0.1, tcp_connections: 0, protocol: 'grpc' },
];
const targets: ScrapeTarget[] = [
  { namespace: 'default', pod: 'productpage-v1-abcde', deployment: 'productpage-v1', service: 'productpage', role: 'sidecar', identity: 'spiffe://cluster.local/ns/default/sa/productpage', admin: '127.0.0.1:41001' },
  { namespace: 'default', pod: 'ingress-xyz', deployment: 'ingress', service: 'ingress', role: 'ingress', identity: 'spiffe://cluster.local/ns/default/sa/ingress', admin: '127.0.0.1:41000' },
];

describe('the stat and edges renderers', () => {
  it('print the stat table as linkerd does', () => golden('stat-deployments.txt', renderStatTable(rows.filter((r) => r.namespace === 'default')) + '\n'));
  it('add NAMESPACE with -A and the byte rates with -o wide', () => golden('stat-deployments-wide-all.txt', renderStatTable(rows, { allNamespaces: true, wide: true }) + '\n'));
  it('print an empty table as its header', () => golden('stat-empty.txt', renderStatTable([]) + '\n'));
  it('print -o json with numbers, and null without traffic', () => golden('stat-deployments.json.txt', JSON.stringify(statJson(rows), null, 2) + '\n'));
  it('print the edges table', () => golden('edges.txt', renderEdgesTable(edges) + '\n'));
  it('print the identities with -o wide', () => golden('edges-wide.txt', renderEdgesTable(edges, { wide: true }) + '\n'));
  it('print edges as json', () => golden('edges.json.txt', JSON.stringify(edgesJson(edges), null, 2) + '\n'));
  it('print a Prometheus config with static targets', () => golden('prometheus-config.txt', renderPrometheusConfig(targets, { scrapeIntervalMs: 10_000 })));
  it('print a Prometheus config reading file_sd, and the file', () => golden('prometheus-config-file-sd.txt',
    renderPrometheusConfig(targets, { scrapeIntervalMs: 1000, fileSd: '/var/lib/mesh/targets.json' }) + '---\n' + JSON.stringify(fileSdTargets(targets), null, 2) + '\n'));
  it('print a Prometheus config with no proxies yet', () => golden('prometheus-config-empty.txt', renderPrometheusConfig([], { scrapeIntervalMs: 500 })));

  it('formats latencies to what matters at each scale', () => {
    const cases: [number | null, string][] = [[null, '-'], [0.034, '0.034ms'], [0.75, '0.75ms'], [1, '1ms'], [2.46, '2.5ms'], [9.96, '10ms'], [10.4, '10ms'], [151.2, '151ms']];
    for (const [v, s] of cases) assert.equal(formatLatency(v), s);
  });
});
