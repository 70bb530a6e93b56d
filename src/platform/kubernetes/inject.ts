// mesh inject as a pure transform: pod templates in, the same with the mesh proxy (a native sidecar), the iptables
// init container and the identity token volume out, plus a per-resource report. No cluster involved; the webhook
// applies the same transform to single pods. Injecting twice gives the same as once: mesh's own parts are taken
// out before they are put in.
import { parseAllDocuments } from 'yaml';
import { MeshError } from '../../util/errors.js';
import { YAML_OPTIONS } from './yaml.js';
import { assignInboundPorts, formatInboundPorts, INBOUND_PORTS_ENV, type InboundPort } from './inbound-ports.js';
import {
  CONTROL_NAMESPACE, CONTROL_NS_LABEL, CONTROL_PORT, INIT_CONTAINER, INJECT_ANNOTATION, PROXY_CONTAINER, PROXY_PORTS, PROXY_UID,
  PROXY_VERSION_ANNOTATION, SERVICE_ACCOUNT_ANNOTATION, TOKEN_AUDIENCE, TOKEN_PATH, TOKEN_VOLUME, controlHost,
  OPAQUE_PORTS_ANNOTATION,
  OPAQUE_PORTS_ENV,
  TRACE_COLLECTOR_ANNOTATION,
  TRACE_COLLECTOR_ENV,
} from './names.js';
import { workloadOf } from './workloads.js';
import { SIDECAR_MALLOC_ARENAS, sidecarNodeFlags } from '../sidecar-flags.js';

export interface InjectOptions {
  version: string;
  image: string;
  trustDomain: string;
  /** PEM bundle the proxy verifies the control plane and peers by (inline, as Linkerd does: pods cannot mount mesh-system's ConfigMap). */
  trustAnchorsPem: string;
  /** host:port of the control plane; default the mesh-control Service. */
  controlAddress?: string;
  /** Lifetime of the projected ServiceAccount token the proxy bootstraps its identity with. */
  tokenExpirationSeconds?: number;
}

export interface InjectReport {
  kind: string;
  name: string;
  result: 'injected' | 'skipped';
  /** Why it was skipped, when it was not a kind with pods. */
  reason?: string;
  warnings: string[];
}

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Where each workload kind keeps its pod template. */
const TEMPLATE: Record<string, (o: Obj) => Obj | undefined> = {
  Pod: (o) => o,
  Deployment: (o) => o.spec?.template,
  StatefulSet: (o) => o.spec?.template,
  DaemonSet: (o) => o.spec?.template,
  ReplicaSet: (o) => o.spec?.template,
  Job: (o) => o.spec?.template,
  CronJob: (o) => o.spec?.jobTemplate?.spec?.template,
};

/** Other meshes' sidecars: injecting a second proxy would route traffic through both. */
const FOREIGN_SIDECARS = ['linkerd-proxy', 'istio-proxy', 'envoy', 'envoy-sidecar', 'consul-dataplane', 'kuma-sidecar'];

const nameOf = (o: Obj) => String(o.metadata?.name ?? o.metadata?.generateName ?? '<unnamed>');

/** iptables' multiport takes at most 15 ports, a range counting two: longer lists take several rules. */
function multiport(ports: string[]): string[] {
  const groups: string[][] = [[]];
  let weight = 0;
  for (const p of ports) {
    const w = p.includes(':') ? 2 : 1;
    if (weight + w > 15) {
      groups.push([]);
      weight = 0;
    }
    groups[groups.length - 1]!.push(p);
    weight += w;
  }
  return groups.filter((g) => g.length).map((g) => g.join(','));
}

/**
 * The iptables rules mesh-init applies, as a script (in the container args, so `kubectl get pod -o yaml` shows it).
 * `inbound` maps app ports to the proxy's listeners: each is redirected to its own, any other port to the default.
 */
export function initScript(skipInbound: string[] = [], skipOutbound: string[] = [], inbound: InboundPort[] = []): string {
  const { inbound: defaultListener, outbound, admin } = PROXY_PORTS;
  const perPort = inbound.filter((p) => p.listener !== defaultListener);
  const own = [defaultListener, ...perPort.map((p) => p.listener), admin];
  const inSkip = [...own.map(String), ...skipInbound];
  return [
    'set -eu',
    `# mesh-init: the pod's TCP traffic goes through the mesh proxy: inbound to ${defaultListener}${perPort.length ? ` (${perPort.map((p) => `${p.app} to ${p.listener}`).join(', ')})` : ''}, outbound to ${outbound}.`,
    `# The proxy's own ports (${own.join(', ')}) and its own traffic (uid ${PROXY_UID}) are left alone, or it would loop.`,
    '# The same rules for IPv4 (iptables) and, where the pod has IPv6 NAT, for IPv6 (ip6tables).',
    'rules() {',
    'for chain in MESH_INBOUND MESH_OUTBOUND; do ipt -N "$chain" 2>/dev/null || ipt -F "$chain"; done',
    ...multiport(inSkip).map((ports) => `ipt -A MESH_INBOUND -p tcp -m multiport --dports ${ports} -j RETURN`),
    ...perPort.map((p) => `ipt -A MESH_INBOUND -p tcp --dport ${p.app} -j REDIRECT --to-ports ${p.listener}`),
    `ipt -A MESH_INBOUND -p tcp -j REDIRECT --to-ports ${defaultListener}`,
    'ipt -C PREROUTING -p tcp -j MESH_INBOUND 2>/dev/null || ipt -A PREROUTING -p tcp -j MESH_INBOUND',
    `ipt -A MESH_OUTBOUND -m owner --uid-owner ${PROXY_UID} -j RETURN`,
    'ipt -A MESH_OUTBOUND -o lo -j RETURN',
    ...multiport(skipOutbound).map((ports) => `ipt -A MESH_OUTBOUND -p tcp -m multiport --dports ${ports} -j RETURN`),
    `ipt -A MESH_OUTBOUND -p tcp -j REDIRECT --to-ports ${outbound}`,
    'ipt -C OUTPUT -p tcp -j MESH_OUTBOUND 2>/dev/null || ipt -A OUTPUT -p tcp -j MESH_OUTBOUND',
    '}',
    'ipt() { iptables -w 5 -t nat "$@"; }',
    'rules',
    'if ip6tables -w 5 -t nat -S >/dev/null 2>&1; then',
    '  ipt() { ip6tables -w 5 -t nat "$@"; }',
    '  rules',
    "else echo 'mesh-init: no IPv6 NAT (ip6tables) in this pod: IPv6 TCP is not captured' >&2",
    'fi',
    '',
  ].join('\n');
}

/** Ports (and a:b ranges) from a skip annotation; anything else is reported and ignored. */
function portList(value: unknown, what: string, warnings: string[]): string[] {
  if (typeof value !== 'string' || !value.trim()) return [];
  const out: string[] = [];
  for (const part of value.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(\d{1,5})(?:[-:](\d{1,5}))?$/.exec(part);
    const ok = m && Number(m[1]) >= 1 && Number(m[1]) <= 65535 && (!m[2] || (Number(m[2]) <= 65535 && Number(m[2]) >= Number(m[1])));
    if (ok) out.push(m![2] ? `${m![1]}:${m![2]}` : m![1]!);
    else warnings.push(`${what}: '${part}' is not a port or range, ignored`);
  }
  return out;
}

function proxyContainer(o: InjectOptions, inboundPorts: InboundPort[], workload: string | undefined, opaquePorts: string[] = [], traceCollector?: string): Obj {
  const { inbound, outbound, admin } = PROXY_PORTS;
  const field = (fieldPath: string) => ({ valueFrom: { fieldRef: { fieldPath } } });
  const probe = (path: string) => ({ httpGet: { path, port: admin } });
  return {
    name: PROXY_CONTAINER,
    image: o.image,
    imagePullPolicy: 'IfNotPresent',
    // A native sidecar: started before the app containers, stopped after them, and no obstacle to a Job finishing.
    restartPolicy: 'Always',
    args: ['proxy', '--platform', 'kubernetes', '--inbound-port', String(inbound), '--outbound-port', String(outbound), '--admin-port', String(admin)],
    env: [
      { name: 'MESH_NAMESPACE', ...field('metadata.namespace') },
      { name: 'MESH_POD_NAME', ...field('metadata.name') },
      { name: 'MESH_POD_IP', ...field('status.podIP') },
      { name: 'MESH_SERVICE_ACCOUNT', ...field('spec.serviceAccountName') },
      { name: 'MESH_VERSION', ...field("metadata.labels['version']") },
      // The proxy's `deployment` metric label, as the control plane names the pod's workload (from its owners).
      ...(workload ? [{ name: 'MESH_WORKLOAD', value: workload }] : []),
      { name: 'MESH_TRUST_DOMAIN', value: o.trustDomain },
      { name: 'MESH_CONTROL_ADDRESS', value: o.controlAddress ?? `${controlHost()}:${CONTROL_PORT}` },
      { name: 'MESH_IDENTITY_TOKEN_FILE', value: `${TOKEN_PATH}/token` },
      // The default listener's app port, for proxies older than MESH_INBOUND_PORTS.
      { name: 'MESH_APP_PORT', value: String(inboundPorts[0]!.app) },
      { name: INBOUND_PORTS_ENV, value: formatInboundPorts(inboundPorts) },
      // Ports never sniffed for HTTP (mesh.io/opaque-ports, as Linkerd's config.linkerd.io/opaque-ports).
      ...(opaquePorts.length ? [{ name: OPAQUE_PORTS_ENV, value: opaquePorts.map((p) => p.replace(':', '-')).join(',') }] : []),
      // Spans to the pod's own collector (mesh.io/trace-collector) instead of mesh-control's.
      ...(traceCollector ? [{ name: TRACE_COLLECTOR_ENV, value: traceCollector }] : []),
      { name: 'MESH_TRUST_ANCHORS', value: o.trustAnchorsPem.replace(/\r\n/g, '\n') },
      { name: 'NODE_OPTIONS', value: sidecarNodeFlags({}).join(' ') },
      { name: 'MALLOC_ARENA_MAX', value: SIDECAR_MALLOC_ARENAS },
    ],
    ports: [
      { name: 'mesh-inbound', containerPort: inbound, protocol: 'TCP' },
      { name: 'mesh-admin', containerPort: admin, protocol: 'TCP' },
    ],
    // The kubelet starts the app only once the startup probe passes: the app never runs without its proxy.
    startupProbe: { ...probe('/ready'), periodSeconds: 1, failureThreshold: 120 },
    readinessProbe: { ...probe('/ready'), periodSeconds: 5, failureThreshold: 3 },
    livenessProbe: { ...probe('/live'), periodSeconds: 10, failureThreshold: 3 },
    resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '256Mi' } },
    securityContext: {
      runAsUser: PROXY_UID, runAsGroup: PROXY_UID, runAsNonRoot: true, allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
    },
    terminationMessagePolicy: 'FallbackToLogsOnError',
    volumeMounts: [{ name: TOKEN_VOLUME, mountPath: TOKEN_PATH, readOnly: true }],
  };
}

function initContainer(o: InjectOptions, script: string): Obj {
  return {
    name: INIT_CONTAINER,
    image: o.image,
    imagePullPolicy: 'IfNotPresent',
    command: ['/bin/sh', '-c'],
    args: [script],
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
    // iptables needs root with NET_ADMIN and NET_RAW in the pod's network namespace, and nothing more.
    securityContext: {
      runAsUser: 0, runAsNonRoot: false, privileged: false, allowPrivilegeEscalation: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

/** Takes mesh's own parts out of a pod template (in place), keeping the keys so re-injecting keeps key order. */
function uninject(meta: Obj, spec: Obj): void {
  if (isObj(meta.annotations)) {
    delete meta.annotations[PROXY_VERSION_ANNOTATION];
    delete meta.annotations[SERVICE_ACCOUNT_ANNOTATION];
  }
  if (isObj(meta.labels)) delete meta.labels[CONTROL_NS_LABEL];
  if (Array.isArray(spec.initContainers)) spec.initContainers = spec.initContainers.filter((c: Obj) => c?.name !== INIT_CONTAINER && c?.name !== PROXY_CONTAINER);
  if (Array.isArray(spec.volumes)) spec.volumes = spec.volumes.filter((v: Obj) => v?.name !== TOKEN_VOLUME);
}

export interface PodTemplateResult {
  injected: boolean;
  reason?: string;
  warnings: string[];
}

/**
 * Injects into one pod template (metadata + spec objects, changed in place). `owner` is the workload's metadata,
 * whose annotation can also disable injection.
 */
export function injectTemplate(template: Obj, o: InjectOptions, owner?: Obj, workload?: string): PodTemplateResult {
  const warnings: string[] = [];
  if (!isObj(template.spec)) return { injected: false, reason: 'it has no pod spec', warnings };
  if (!isObj(template.metadata)) template.metadata = {};
  const meta = template.metadata as Obj;
  const spec = template.spec as Obj;
  const disabled = [owner?.annotations?.[INJECT_ANNOTATION], meta.annotations?.[INJECT_ANNOTATION]].includes('disabled');
  if (disabled) return { injected: false, reason: `${INJECT_ANNOTATION}: disabled`, warnings };
  if (spec.hostNetwork === true) {
    warnings.push('hostNetwork: true — pods on the host network cannot be given a proxy');
    return { injected: false, reason: 'hostNetwork', warnings };
  }
  const all = [...(Array.isArray(spec.containers) ? spec.containers : []), ...(Array.isArray(spec.initContainers) ? spec.initContainers : [])] as Obj[];
  const foreign = all.find((c) => FOREIGN_SIDECARS.includes(String(c?.name)));
  if (foreign) {
    warnings.push(`it already has a sidecar (${foreign.name}); one proxy per pod`);
    return { injected: false, reason: 'existing sidecar', warnings };
  }
  const udp = all.flatMap((c) => (Array.isArray(c?.ports) ? c.ports : [])).filter((p: Obj) => p?.protocol === 'UDP');
  if (udp.length) warnings.push(`UDP port${udp.length > 1 ? 's' : ''} ${udp.map((p: Obj) => p.containerPort).join(', ')} — UDP is not proxied, that traffic bypasses the mesh`);

  uninject(meta, spec);
  const skipIn = portList(meta.annotations?.['mesh.io/skip-inbound-ports'], 'mesh.io/skip-inbound-ports', warnings);
  const skipOut = portList(meta.annotations?.['mesh.io/skip-outbound-ports'], 'mesh.io/skip-outbound-ports', warnings);
  const opaque = portList(meta.annotations?.[OPAQUE_PORTS_ANNOTATION], OPAQUE_PORTS_ANNOTATION, warnings);
  const collector = meta.annotations?.[TRACE_COLLECTOR_ANNOTATION];
  const traceCollector = typeof collector === 'string' && /^http:\/\/[^/\s]+(\/\S*)?$/.test(collector) ? collector : undefined;
  if (collector !== undefined && !traceCollector) warnings.push(`${TRACE_COLLECTOR_ANNOTATION}: '${collector}' is not an http:// URL, ignored (spans go to mesh-control)`);
  const serviceAccount = String(spec.serviceAccountName || spec.serviceAccount || 'default');
  meta.annotations = { ...(isObj(meta.annotations) ? meta.annotations : {}), [PROXY_VERSION_ANNOTATION]: o.version, [SERVICE_ACCOUNT_ANNOTATION]: serviceAccount };
  meta.labels = { ...(isObj(meta.labels) ? meta.labels : {}), [CONTROL_NS_LABEL]: CONTROL_NAMESPACE };
  const userInit = Array.isArray(spec.initContainers) ? spec.initContainers : [];
  // mesh-init first (rules in place before anything runs), then the proxy, then the pod's own init containers,
  // which so already have the mesh.
  // One inbound listener per declared TCP port of the app containers; other ports go to the first one's (or 80).
  const portsOf = (list: unknown) => (Array.isArray(list) ? list : []).flatMap((c: Obj) => (Array.isArray(c?.ports) ? c.ports : []))
    .filter((p: Obj) => Number.isInteger(p?.containerPort)) as Obj[];
  const appPorts = portsOf(spec.containers).filter((p) => (p.protocol ?? 'TCP') === 'TCP').map((p) => p.containerPort as number);
  const declared = [...portsOf(spec.containers), ...portsOf(userInit)].map((p) => p.containerPort as number);
  const inboundPorts = assignInboundPorts(appPorts, { declared, skipInbound: skipIn });
  // A pod (the webhook's) names its workload through its owners; a template is its workload's.
  const name = workload ?? (owner ? undefined : workloadOf(meta).name) ?? '';
  spec.initContainers = [initContainer(o, initScript(skipIn, skipOut, inboundPorts)), proxyContainer(o, inboundPorts, name || undefined, opaque, traceCollector), ...userInit];
  const tokenVolume = {
    name: TOKEN_VOLUME,
    projected: { sources: [{ serviceAccountToken: { audience: TOKEN_AUDIENCE, expirationSeconds: o.tokenExpirationSeconds ?? 600, path: 'token' } }] },
  };
  spec.volumes = [...(Array.isArray(spec.volumes) ? spec.volumes : []), tokenVolume];
  return { injected: true, warnings };
}

/** Injects one object (a copy); a List recurses into its items. Reports go to `reports`. */
export function injectObject(input: unknown, o: InjectOptions, reports: InjectReport[]): unknown {
  if (!isObj(input) || typeof input.kind !== 'string') return input;
  if (input.kind === 'List' && Array.isArray(input.items)) {
    return { ...input, items: input.items.map((i: unknown) => injectObject(i, o, reports)) };
  }
  const kind = input.kind;
  const locate = TEMPLATE[kind];
  if (!locate) {
    reports.push({ kind, name: nameOf(input), result: 'skipped', warnings: [] });
    return input;
  }
  const copy = structuredClone(input);
  const template = locate(copy);
  // A CronJob's pods belong to Jobs named at each run: no fixed workload name.
  const workload = kind === 'Pod' ? undefined : kind === 'CronJob' ? '' : String(copy.metadata?.name ?? '');
  const r = template ? injectTemplate(template, o, kind === 'Pod' ? undefined : copy.metadata, workload) : { injected: false, reason: 'it has no pod template', warnings: [] };
  reports.push({ kind, name: nameOf(input), result: r.injected ? 'injected' : 'skipped', reason: r.reason, warnings: r.warnings });
  return r.injected ? copy : input;
}

/** Injects multi-document YAML (or JSON); documents keep their order, and those not changed their text. */
export function injectYaml(text: string, o: InjectOptions, source = 'input'): { output: string; reports: InjectReport[] } {
  const reports: InjectReport[] = [];
  const parts: string[] = [];
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) throw new MeshError(`${source} is not YAML`, 'pass Kubernetes manifests');
  for (const [i, doc] of docs.entries()) {
    if (doc.errors.length) {
      throw new MeshError(`${source}: document ${i + 1} is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`, 'fix the YAML, or check it with kubectl apply --dry-run=client -f');
    }
    const value: unknown = doc.toJS({ maxAliasCount: 1000 });
    if (value === null || value === undefined) continue;
    const before = reports.length;
    const out = injectObject(value, o, reports);
    const changed = reports.slice(before).some((r) => r.result === 'injected');
    if (changed) doc.contents = doc.createNode(out, { aliasDuplicateObjects: false }) as typeof doc.contents;
    parts.push(doc.toString(YAML_OPTIONS).replace(/^---\n/, ''));
  }
  return { output: parts.map((p) => `---\n${p}`).join(''), reports };
}

/** The stderr lines for a report, as linkerd prints them. */
export function reportLines(reports: InjectReport[]): string[] {
  const lines: string[] = [];
  for (const r of reports) {
    const what = `${r.kind.toLowerCase()} "${r.name}"`;
    for (const w of r.warnings) lines.push(`‼ ${what}: ${w}`);
    lines.push(`${what} ${r.result}${r.result === 'skipped' && r.reason ? ` (${r.reason})` : ''}`);
  }
  if (!reports.some((r) => r.result === 'injected')) lines.push('‼ nothing was injected: no Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob or Pod to inject');
  return lines;
}
