// Renders mesh stat and mesh edges as linkerd viz prints them: kubectl-style tables, or JSON.
import type { Edge, StatRow } from '../api/telemetry.js';
import { table } from './table.js';

export const formatSuccess = (s: number | null) => (s === null ? '-' : `${(s * 100).toFixed(2)}%`);
export const formatRps = (r: number | null) => (r === null ? '-' : `${r.toFixed(1)}rps`);
export const formatCount = (n: number | null) => (n === null ? '-' : String(Math.round(n)));

/** Whole milliseconds from 10 ms, one decimal below, two significant digits under 1 ms. */
export function formatLatency(ms: number | null): string {
  if (ms === null) return '-';
  if (ms >= 10) return `${Math.round(ms)}ms`;
  if (ms >= 1) return `${Number(ms.toFixed(1))}ms`;
  return `${Number(ms.toPrecision(2))}ms`;
}

export function formatByteRate(b: number | null): string {
  if (b === null) return '-';
  if (b >= 1e6) return `${(b / 1e6).toFixed(1)}MB/s`;
  if (b >= 1e3) return `${(b / 1e3).toFixed(1)}kB/s`;
  return `${b.toFixed(1)}B/s`;
}

export interface StatTableOptions {
  allNamespaces?: boolean;
  wide?: boolean;
}

export function renderStatTable(rows: StatRow[], o: StatTableOptions = {}): string {
  const head = ['NAME', 'MESHED', 'SUCCESS', 'RPS', 'LATENCY_P50', 'LATENCY_P95', 'LATENCY_P99', 'TCP_CONN'];
  if (o.allNamespaces) head.unshift('NAMESPACE');
  if (o.wide) head.push('READ_BYTES/SEC', 'WRITE_BYTES/SEC', 'PROTOCOL');
  // Shown only when authorization refused something in the window, so it cannot be missed.
  const denied = rows.some((r) => r.denied_rps);
  if (denied) head.splice(head.indexOf('SUCCESS') + 1, 0, 'DENIED');
  return table(head, rows.map((r) => {
    const cells = [r.name, r.meshed, formatSuccess(r.success), formatRps(r.rps), formatLatency(r.latency_ms_p50),
      formatLatency(r.latency_ms_p95), formatLatency(r.latency_ms_p99), formatCount(r.tcp_open_connections)];
    if (o.allNamespaces) cells.unshift(r.namespace);
    if (o.wide) cells.push(formatByteRate(r.tcp_read_bytes_rate), formatByteRate(r.tcp_write_bytes_rate), r.protocol ?? '-');
    if (denied) cells.splice(head.indexOf('DENIED'), 0, formatRps(r.denied_rps ?? null));
    return cells;
  }));
}

const round = (n: number | null, digits: number) => (n === null ? null : Number(n.toFixed(digits)));

/** The -o json shape: one object per row, numbers unformatted (success 0..1, null without traffic). */
export function statJson(rows: StatRow[]): object[] {
  return rows.map((r) => ({
    namespace: r.namespace,
    kind: r.kind,
    name: r.name,
    meshed: r.meshed,
    success: round(r.success, 6),
    rps: round(r.rps, 3),
    latency_ms_p50: round(r.latency_ms_p50, 3),
    latency_ms_p95: round(r.latency_ms_p95, 3),
    latency_ms_p99: round(r.latency_ms_p99, 3),
    tcp_open_connections: r.tcp_open_connections,
    tcp_read_bytes_rate: round(r.tcp_read_bytes_rate, 1),
    tcp_write_bytes_rate: round(r.tcp_write_bytes_rate, 1),
    denied_rps: round(r.denied_rps ?? null, 3),
    protocol: r.protocol ?? null,
  }));
}

export function renderEdgesTable(edges: Edge[], o: { wide?: boolean } = {}): string {
  const head = ['SRC', 'DST', 'SRC_NS', 'DST_NS', 'SECURED', 'PROTOCOL'];
  if (o.wide) head.push('TCP_CONN', 'CLIENT_ID', 'SERVER_ID');
  return table(head, edges.map((e) => {
    const cells = [e.src, e.dst, e.src_namespace, e.dst_namespace, e.secured ? '√' : '×', e.protocol || '-'];
    if (o.wide) cells.push(String(e.tcp_connections ?? 0), e.client_id || '-', e.server_id || '-');
    return cells;
  }));
}

export function edgesJson(edges: Edge[]): object[] {
  return edges.map((e) => ({ ...e, rps: Number(e.rps.toFixed(3)) }));
}
