// What `mesh edges` shows: which workloads talked to which in the window, from the callers'
// outbound metrics, with the identities each side proved: the client's own identity (it is the
// caller's proxy that counted), and the server's as the caller verified it (server_id).
import { parseDuration } from '../../util/duration.js';
import { formatMs, type MetricSource } from './source.js';
import { parseKind } from './stat.js';
import type { Edge, EdgesQuery, EdgesResult } from '../../api/telemetry.js';
import { MeshError } from '../../util/errors.js';

export function parseEdgesQuery(p: URLSearchParams): EdgesQuery {
  const kind = parseKind(p.get('resource') ?? undefined);
  if (kind !== 'deployment' && kind !== 'pod') {
    throw new MeshError(`edges are between deployments or pods, not ${kind}s`, "use 'mesh edges deployments', or 'mesh edges pods'");
  }
  let windowMs: number;
  try {
    windowMs = parseDuration(p.get('window') || '1m', 'time window');
  } catch (err) {
    throw new MeshError((err as Error).message, 'e.g. -t 30s, -t 1m or -t 5m');
  }
  return { kind, namespace: p.get('namespace') || 'default', allNamespaces: ['true', '1'].includes(p.get('all') ?? ''), windowMs };
}

export function edgesQueryParams(q: EdgesQuery): URLSearchParams {
  const p = new URLSearchParams({ resource: q.kind, namespace: q.namespace, window: `${q.windowMs}ms` });
  if (q.allNamespaces) p.set('all', 'true');
  return p;
}

export async function computeEdges(src: MetricSource, q: EdgesQuery): Promise<EdgesResult> {
  if (q.windowMs > src.maxWindowMs) {
    throw new MeshError(`time window ${formatMs(q.windowMs)} is longer than the ${formatMs(src.maxWindowMs)} ${src.name} keeps`,
      `use -t ${formatMs(src.maxWindowMs)} or less, or --prometheus URL`);
  }
  const [srcLabel, dstLabel] = q.kind === 'deployment' ? ['deployment', 'dst_deployment'] : ['pod', 'dst_pod'];
  const by = ['namespace', srcLabel, 'identity', 'dst_namespace', dstLabel, 'server_id', 'tls'];
  // Requests, and opaque TCP connections (opened in the window, or open now: a long-lived one is an edge too).
  const opaque = { direction: 'outbound', peer: 'dst', protocol: 'opaque' };
  const [requests, opened, open, responses] = await Promise.all([
    src.rate('request_total', { direction: 'outbound' }, by, q.windowMs),
    src.rate('tcp_open_total', opaque, by, q.windowMs),
    src.gauge('tcp_open_connections', opaque, by),
    src.rate('response_total', { direction: 'outbound' }, [...by, 'grpc_status'], q.windowMs),
  ]);
  const series = [...requests.map((s) => ({ s, rps: s.value, tcp: 0 })), ...opened.map((s) => ({ s, rps: 0, tcp: 0 })), ...open.map((s) => ({ s, rps: 0, tcp: s.value }))];
  const edges = new Map<string, Edge>();
  for (const { s, rps, tcp } of series) {
    const l = s.labels;
    // Requests that found no endpoint went nowhere (and destinations outside the mesh have no workload): no edge.
    if (!(s.value > 0) || !l[dstLabel] || !l.dst_namespace) continue;
    if (!q.allNamespaces && l.namespace !== q.namespace && l.dst_namespace !== q.namespace) continue;
    const key = [l.namespace, l[srcLabel], l.dst_namespace, l[dstLabel]].join('\u0000');
    const e = edges.get(key);
    const secured = l.tls === 'true';
    if (!e) {
      edges.set(key, {
        src: l[srcLabel]!, src_namespace: l.namespace!, dst: l[dstLabel]!, dst_namespace: l.dst_namespace,
        client_id: l.identity ?? '', server_id: l.server_id ?? '', secured, rps, tcp_connections: tcp, protocol: '',
      });
    } else {
      e.secured &&= secured;
      e.rps += rps;
      e.tcp_connections += tcp;
      if (l.server_id && !e.server_id.split(',').includes(l.server_id)) e.server_id = e.server_id ? `${e.server_id},${l.server_id}` : l.server_id;
    }
  }
  // What each edge spoke: its responses with a grpc_status were gRPC, the others HTTP; tunnels TCP.
  const spoke = new Map<string, Set<string>>();
  const mark = (l: Record<string, string | undefined>, p: string) => {
    const key = [l.namespace, l[srcLabel], l.dst_namespace, l[dstLabel]].join('\u0000');
    if (edges.has(key)) (spoke.get(key) ?? spoke.set(key, new Set()).get(key)!).add(p);
  };
  for (const s of responses) if (s.value > 0) mark(s.labels, s.labels.grpc_status ? 'grpc' : 'http');
  for (const s of [...opened, ...open]) if (s.value > 0) mark(s.labels, 'tcp');
  for (const [key, e] of edges) e.protocol = [...(spoke.get(key) ?? [])].sort().join(',') || '-';
  const list = [...edges.values()].sort((a, b) => a.src_namespace.localeCompare(b.src_namespace) || a.src.localeCompare(b.src) ||
    a.dst_namespace.localeCompare(b.dst_namespace) || a.dst.localeCompare(b.dst));
  const hints: string[] = [];
  const notice = src.notice(q.windowMs);
  if (notice) hints.push(notice);
  if (!list.length) hints.push(`No traffic yet between meshed workloads ${q.allNamespaces ? '' : `of namespace ${q.namespace} `}in the last ${formatMs(q.windowMs)}`);
  return { edges: list, windowMs: q.windowMs, source: src.name, hints };
}
