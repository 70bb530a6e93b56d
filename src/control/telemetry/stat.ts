// What `mesh stat` shows, computed from any MetricSource the way linkerd viz stat does: success
// rate, request rate and latency from the inbound side of each resource (the ingress, which has no
// inbound, from its outbound), open connections and bytes from its inbound TCP metrics, and with
// --from/--to the outbound side of the traffic between the two resources.
import { parseDuration } from '../../util/duration.js';
import { MeshError } from '../../util/errors.js';
import type { Labels } from './parse.js';
import type { ResourceKind, ResourceRef, StatQuery, StatResult, StatRow } from '../../api/telemetry.js';
import { formatMs, type MetricSource, type PodInfo, type VectorSample } from './source.js';

export const RESOURCE_ALIASES: Record<string, ResourceKind> = {
  deployments: 'deployment', deployment: 'deployment', deploy: 'deployment',
  pods: 'pod', pod: 'pod', po: 'pod',
  services: 'service', service: 'service', svc: 'service',
  namespaces: 'namespace', namespace: 'namespace', ns: 'namespace',
};

const PLURAL: Record<ResourceKind, string> = { deployment: 'deployments', pod: 'pods', service: 'services', namespace: 'namespaces' };

export function parseKind(text: string | undefined): ResourceKind {
  const kind = text === undefined ? undefined : RESOURCE_ALIASES[text.toLowerCase()];
  if (!kind) {
    throw new MeshError(text === undefined ? 'no resource type given' : `unknown resource type '${text}'`,
      'use deployments (deploy), pods (po), services (svc) or namespaces (ns)');
  }
  return kind;
}

/** `deploy/web`, `svc/reviews`, `po/web-v1-abc`, `ns/default` or a bare name. */
export function parseRef(text: string, namespace: string): ResourceRef {
  const slash = text.indexOf('/');
  if (slash < 0) return { name: text, namespace };
  const kind = parseKind(text.slice(0, slash));
  const name = text.slice(slash + 1);
  if (!name) throw new MeshError(`'${text}' names no resource`, 'write TYPE/NAME, e.g. deploy/web');
  return kind === 'namespace' ? { kind, name, namespace: name } : { kind, name, namespace };
}

/** The query from request parameters (the API's query string, or the CLI's flags). */
export function parseStatQuery(p: URLSearchParams): StatQuery {
  // TYPE/NAME (deploy/reviews-v1), as kubectl and linkerd take it, is the same as TYPE NAME.
  const [resource, slashName, extra] = (p.get('resource') ?? '').split('/');
  if (slashName !== undefined) {
    if (!slashName || extra !== undefined) throw new MeshError(`'${p.get('resource')}' is not TYPE/NAME`, "e.g. 'mesh stat deploy/reviews-v1'");
    if (p.get('name')) throw new MeshError(`name given twice ('${p.get('resource')}' and '${p.get('name')}')`, 'use TYPE/NAME or TYPE NAME, not both');
    p = new URLSearchParams(p);
    p.set('name', slashName);
  }
  const kind = parseKind(resource || undefined);
  const namespace = p.get('namespace') || 'default';
  const windowText = p.get('window') || '1m';
  let windowMs: number;
  try {
    windowMs = parseDuration(windowText, 'time window');
  } catch (err) {
    throw new MeshError((err as Error).message, 'e.g. -t 30s, -t 1m or -t 5m');
  }
  if (windowMs < 1000) throw new MeshError(`time window ${windowText} is too short`, 'use 1s or more, e.g. -t 30s');
  const q: StatQuery = { kind, namespace, allNamespaces: ['true', '1'].includes(p.get('all') ?? ''), windowMs };
  const name = p.get('name');
  if (name) q.name = name;
  const from = p.get('from');
  const to = p.get('to');
  if (from && to) throw new MeshError('--from and --to cannot be used together', 'ask for one side of the traffic at a time');
  if (from) q.from = parseRef(from, p.get('fromNamespace') || namespace);
  if (to) q.to = parseRef(to, p.get('toNamespace') || namespace);
  return q;
}

export function statQueryParams(q: StatQuery): URLSearchParams {
  const p = new URLSearchParams({ resource: q.kind, namespace: q.namespace, window: `${q.windowMs}ms` });
  if (q.allNamespaces) p.set('all', 'true');
  if (q.name) p.set('name', q.name);
  const ref = (r: ResourceRef) => (r.kind ? `${r.kind}/${r.name}` : r.name);
  if (q.from) p.set('from', ref(q.from)), p.set('fromNamespace', q.from.namespace);
  if (q.to) p.set('to', ref(q.to)), p.set('toNamespace', q.to.namespace);
  return p;
}

// The label that names a resource on the proxy's own side, and on the destination side of outbound metrics.
const SRC_LABEL: Record<ResourceKind, string> = { deployment: 'deployment', pod: 'pod', service: 'service', namespace: 'namespace' };
const DST_LABEL: Record<ResourceKind, string> = { deployment: 'dst_deployment', pod: 'dst_pod', service: 'dst_service', namespace: 'dst_namespace' };

export function podName(p: PodInfo, kind: ResourceKind): string {
  return kind === 'namespace' ? p.namespace : p[SRC_LABEL[kind] as 'deployment' | 'pod' | 'service'];
}

const rowKey = (namespace: string, name: string) => `${namespace}\u0000${name}`;

interface Side {
  match: Labels;
  /** TCP figures are per proxy listener, not per destination: none for --from/--to. */
  tcp?: Labels;
  nsLabel: string;
  nameLabel: string;
}

interface Figures {
  total: number;
  ok: number;
  seen: boolean;
  p50?: number;
  p95?: number;
  p99?: number;
  tcp?: number;
  read?: number;
  write?: number;
  denied?: number;
  grpc?: boolean;
  http?: boolean;
}

/** grpc, http or grpc,http as a row's or an edge's responses were; null for none. */
export function protocolOf(grpc: boolean | undefined, http: boolean | undefined): string | null {
  return grpc && http ? 'grpc,http' : grpc ? 'grpc' : http ? 'http' : null;
}

function resolveRef(ref: ResourceRef, pods: PodInfo[], role: 'from' | 'to'): { kind: ResourceKind; name: string; namespace: string } {
  const exists = (kind: ResourceKind) => pods.some((p) => podName(p, kind) === ref.name && (kind === 'namespace' || p.namespace === ref.namespace));
  const kinds: ResourceKind[] = ref.kind ? [ref.kind] : ['deployment', 'service'];
  const kind = kinds.find(exists);
  if (!kind) {
    const what = ref.kind ?? 'deployment or service';
    throw new MeshError(`no ${what} '${ref.name}'${ref.kind === 'namespace' ? '' : ` in namespace ${ref.namespace}`} for --${role}`,
      `'mesh stat ${ref.kind ? PLURAL[ref.kind] : 'deployments'} -A' lists what is meshed`, { status: 404 });
  }
  return { kind, name: ref.name, namespace: ref.namespace };
}

export async function computeStat(src: MetricSource, q: StatQuery): Promise<StatResult> {
  if (q.windowMs > src.maxWindowMs) {
    throw new MeshError(`time window ${formatMs(q.windowMs)} is longer than the ${formatMs(src.maxWindowMs)} ${src.name} keeps`,
      `use -t ${formatMs(src.maxWindowMs)} or less, or --prometheus URL for longer windows`);
  }
  const pods = await src.pods();
  const inScope = (ns: string) => q.allNamespaces || q.kind === 'namespace' || ns === q.namespace;
  const where = q.allNamespaces ? 'in any namespace' : `in namespace ${q.namespace}`;
  if (q.name && !pods.some((p) => podName(p, q.kind) === q.name && inScope(p.namespace))) {
    throw new MeshError(`no ${q.kind} '${q.name}'${q.kind === 'namespace' ? ' in the mesh' : ` ${where}`}`,
      `'mesh stat ${PLURAL[q.kind]}${q.kind === 'namespace' ? '' : ' -A'}' lists them`, { status: 404 });
  }

  let sides: Side[];
  const own = { nsLabel: 'namespace', nameLabel: SRC_LABEL[q.kind] };
  if (q.from) {
    const f = resolveRef(q.from, pods, 'from');
    const match: Labels = { direction: 'outbound', [SRC_LABEL[f.kind]]: f.name };
    if (f.kind !== 'namespace') match.namespace = f.namespace;
    sides = [{ match, nsLabel: 'dst_namespace', nameLabel: DST_LABEL[q.kind] }];
  } else if (q.to) {
    const t = resolveRef(q.to, pods, 'to');
    const match: Labels = { direction: 'outbound', [DST_LABEL[t.kind]]: t.name };
    if (t.kind !== 'namespace') match.dst_namespace = t.namespace;
    sides = [{ match, ...own }];
  } else {
    sides = [{ match: { direction: 'inbound' }, tcp: { direction: 'inbound', peer: 'src' }, ...own }];
    // A namespace's traffic is its pods' inbound traffic; the ingress's is already counted there.
    if (q.kind !== 'namespace') {
      sides.push({ match: { direction: 'outbound', role: 'ingress' }, tcp: { direction: 'outbound', peer: 'src', role: 'ingress' }, ...own });
    }
  }

  const figures = new Map<string, Figures>();
  const fig = (s: VectorSample, side: Side) => {
    const ns = s.labels[side.nsLabel] ?? '';
    const name = q.kind === 'namespace' ? ns : s.labels[side.nameLabel] ?? '';
    const key = rowKey(ns, name);
    let f = figures.get(key);
    if (!f) figures.set(key, (f = { total: 0, ok: 0, seen: false }));
    return f;
  };
  await Promise.all(sides.map(async (side) => {
    const by = q.kind === 'namespace' ? [side.nsLabel] : [side.nsLabel, side.nameLabel];
    const inbound = side.match.direction === 'inbound';
    const [responses, p50, p95, p99, tcp, read, write, denied] = await Promise.all([
      src.rate('response_total', side.match, [...by, 'classification', 'grpc_status'], q.windowMs),
      src.quantile(0.5, 'response_latency_ms', side.match, by, q.windowMs),
      src.quantile(0.95, 'response_latency_ms', side.match, by, q.windowMs),
      src.quantile(0.99, 'response_latency_ms', side.match, by, q.windowMs),
      side.tcp ? src.gauge('tcp_open_connections', side.tcp, by) : [],
      // Bytes of the proxies' connections only: an opaque tunnel's bytes are in its mesh/1 connection's already.
      side.tcp ? src.rate('tcp_read_bytes_total', { ...side.tcp, protocol: '' }, by, q.windowMs) : [],
      side.tcp ? src.rate('tcp_write_bytes_total', { ...side.tcp, protocol: '' }, by, q.windowMs) : [],
      inbound ? src.rate('inbound_http_authz_deny_total', side.match, by, q.windowMs) : [],
    ]);
    for (const s of responses) {
      const f = fig(s, side);
      f.seen = true;
      f.total += s.value;
      if (s.labels.classification === 'success') f.ok += s.value;
      if (s.value > 0) {
        if (s.labels.grpc_status) f.grpc = true;
        else f.http = true;
      }
    }
    for (const s of p50) fig(s, side).p50 = s.value;
    for (const s of p95) fig(s, side).p95 = s.value;
    for (const s of p99) fig(s, side).p99 = s.value;
    for (const s of tcp) fig(s, side).tcp = (fig(s, side).tcp ?? 0) + s.value;
    for (const s of read) fig(s, side).read = (fig(s, side).read ?? 0) + s.value;
    for (const s of write) fig(s, side).write = (fig(s, side).write ?? 0) + s.value;
    for (const s of denied) fig(s, side).denied = (fig(s, side).denied ?? 0) + s.value;
  }));

  // Meshed pods of all pods per row (on the local platform every workload is meshed).
  const counts = new Map<string, { ns: string; name: string; pods: number; meshed: number; control: boolean }>();
  for (const p of pods) {
    const name = podName(p, q.kind);
    const key = rowKey(p.namespace, name);
    let c = counts.get(key);
    if (!c) counts.set(key, (c = { ns: p.namespace, name, pods: 0, meshed: 0, control: false }));
    c.pods++;
    if (p.controlPlane) c.control = true;
    if (p.meshed !== false) c.meshed++;
  }

  const keys = new Set<string>();
  if (q.from || q.to) {
    // Only what the traffic between the two touched.
    for (const [key, f] of figures) if (f.total > 0) keys.add(key);
  } else {
    for (const key of counts.keys()) keys.add(key);
  }
  const rows: StatRow[] = [];
  for (const key of keys) {
    const [ns, name] = key.split('\u0000') as [string, string];
    if (!name || !ns) continue;
    if (!inScope(ns) || (q.name && name !== q.name)) continue;
    const f = figures.get(key);
    const c = counts.get(key);
    const traffic = f !== undefined && f.total > 0;
    rows.push({
      namespace: ns,
      kind: q.kind,
      name,
      meshed: c ? `${c.meshed}/${c.pods}` : '-',
      ...(c?.control ? { control_plane: true } : {}),
      success: traffic ? f.ok / f.total : null,
      rps: traffic ? f.total : null,
      latency_ms_p50: traffic ? f.p50 ?? null : null,
      latency_ms_p95: traffic ? f.p95 ?? null : null,
      latency_ms_p99: traffic ? f.p99 ?? null : null,
      tcp_open_connections: f?.tcp ?? null,
      tcp_read_bytes_rate: f?.read ?? null,
      tcp_write_bytes_rate: f?.write ?? null,
      denied_rps: f?.denied ? f.denied : null,
      protocol: traffic ? protocolOf(f.grpc, f.http) : null,
    });
  }
  rows.sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));

  const hints: string[] = [];
  const notice = src.notice(q.windowMs);
  if (notice) hints.push(notice);
  // Linkerd counts a 403 as a success (the server answered): say where authorization refused requests.
  const refused = rows.filter((r) => r.denied_rps);
  if (refused.length) {
    hints.push(`‼ authorization refused requests (403) to ${refused.map((r) => r.name).join(', ')} in the last ${formatMs(q.windowMs)} (DENIED; SUCCESS counts them as answered): 'mesh policy list' shows the rules`);
  }
  if (!rows.some((r) => r.rps !== null)) {
    const span = formatMs(q.windowMs);
    if (q.from || q.to) hints.push(`No traffic yet ${q.from ? `from ${q.from.name}` : `to ${q.to!.name}`} in the last ${span}`);
    else if (rows.length === 0) hints.push(`No traffic yet: nothing is meshed ${q.kind === 'namespace' ? 'yet' : where}; start workloads with 'mesh run', or the sample with 'mesh demo'`);
    else hints.push(`No traffic yet in the last ${span}: send requests through the mesh, or widen the window with -t`);
  }
  return { rows, windowMs: q.windowMs, source: src.name, hints };
}
