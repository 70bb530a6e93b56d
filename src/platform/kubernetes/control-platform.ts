// The control plane's view of Kubernetes: endpoints from EndpointSlices and their Pods, service ports from Services,
// routes and policies from the Route and Policy custom resources, all kept current by watches and pushed into the Registry.
import { isIP } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import type { ControlPlatform } from '../../control/platform.js';
import type { Registry } from '../../control/registry.js';
import type { EndpointRecord } from '../../api/types.js';
import { formatIdentity } from '../../identity/spiffe.js';
import { serviceKey, type ConfigKind, type ServicePort } from '../../model/snapshot.js';
import { HttpError } from '../../util/http.js';
import { servicePortProtocol } from '../../model/app-protocol.js';
import { ListWatch, type ListWatchOptions } from './list-watch.js';
import { CONTROL_NAMESPACE, CRD_GROUP, CRD_VERSION, PART_OF, PROXY_CONTAINER, PROXY_PORTS } from './names.js';
import { crdConfig, type EndpointSlice, type MeshResource, type Pod, type Service } from './resources.js';
import { podServices, workloadNames, workloadOf } from './workloads.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** Whether the pod runs the mesh proxy (as inject and the webhook add it: a native sidecar or a container). */
export function meshed(pod: Pod): boolean {
  return [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].some((c) => c.name === PROXY_CONTAINER);
}

/** Whether the pod is the mesh's own (mesh-control: in mesh-system, labelled part of mesh by install). */
export function isControlPlane(pod: Pod): boolean {
  return pod.metadata?.namespace === CONTROL_NAMESPACE || pod.metadata?.labels?.[PART_OF] === 'mesh';
}

/**
 * The mesh endpoints: each ready address of a Service's EndpointSlices whose Pod is meshed, at the proxy's
 * inbound port, with the identity of the Pod's ServiceAccount and its `version` label. Pure, for tests.
 */
export function endpointsFrom(slices: Iterable<EndpointSlice>, pods: ReadonlyMap<string, Pod>, trustDomain: string): EndpointRecord[] {
  const out = new Map<string, EndpointRecord>();
  for (const slice of slices) {
    const namespace = slice.metadata?.namespace ?? '';
    const service = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!service) continue;
    for (const ep of slice.endpoints ?? []) {
      if (ep.conditions?.ready === false || ep.targetRef?.kind !== 'Pod' || !ep.targetRef.name) continue;
      const pod = pods.get(`${ep.targetRef.namespace ?? namespace}/${ep.targetRef.name}`);
      if (!pod || !meshed(pod) || pod.metadata?.deletionTimestamp) continue;
      const address = ep.addresses?.[0] ?? pod.status?.podIP;
      if (!address) continue;
      const labels = pod.metadata?.labels ?? {};
      const instance = `${pod.metadata?.name}.${namespace}`;
      out.set(`${service}/${instance}`, {
        instance,
        namespace,
        service,
        version: labels.version || 'default',
        address,
        port: PROXY_PORTS.inbound,
        identity: formatIdentity({ trustDomain, namespace, serviceAccount: pod.spec?.serviceAccountName || 'default' }),
        workload: workloadOf(pod.metadata).name,
        admin: `${address}:${PROXY_PORTS.admin}`,
        role: 'sidecar',
        registeredAt: new Date(0).toISOString(),
      });
    }
  }
  return [...out.values()];
}

/**
 * Every running pod as telemetry sees it: meshed ones with their proxy's admin address to scrape, the others only
 * counted (MESHED is meshed/all per workload). Named by workload, not by Service, so a pod without a Service (a Job,
 * a client) has its row too. Pure, for tests.
 */
export function podRecords(pods: Iterable<Pod>, slices: Iterable<EndpointSlice>, trustDomain: string): EndpointRecord[] {
  const services = podServices(slices);
  const out: EndpointRecord[] = [];
  for (const pod of pods) {
    if (pod.metadata?.deletionTimestamp || pod.status?.phase !== 'Running') continue;
    const namespace = pod.metadata?.namespace ?? '';
    const name = pod.metadata?.name ?? '';
    const workload = workloadOf(pod.metadata).name;
    const ip = pod.status?.podIP ?? '';
    const isMeshed = meshed(pod);
    out.push({
      instance: name, namespace, workload, version: pod.metadata?.labels?.version || 'default',
      service: services.get(`${namespace}/${name}`)?.[0] ?? workload, address: ip, port: PROXY_PORTS.inbound,
      identity: formatIdentity({ trustDomain, namespace, serviceAccount: pod.spec?.serviceAccountName || 'default' }),
      admin: isMeshed && ip ? `${ip}:${PROXY_PORTS.admin}` : '', meshed: isMeshed, role: 'sidecar', registeredAt: new Date(0).toISOString(),
      ...(isControlPlane(pod) ? { controlPlane: true } : {}),
    });
  }
  return out;
}

const isTcp = (protocol: string | null | undefined) => (protocol ?? 'TCP') === 'TCP';

/**
 * Each Service's TCP ports with the container port they target, by namespace/name. Meshed peers dial a pod's one
 * inbound port, so its sidecar needs this to send `shop:80` to the app port behind port 80. A named targetPort is
 * resolved as the EndpointSlice controller did: the slice's port named like the Service port holds the container
 * port (the first slice by name that has it; a port not resolved yet is left out). Pure, for tests.
 */
export function servicePortsFrom(services: Iterable<Service>, slices: Iterable<EndpointSlice>): Map<string, ServicePort[]> {
  const resolved = new Map<string, Map<string, number>>();
  const sorted = [...slices].sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  for (const slice of sorted) {
    const service = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!service) continue;
    const key = serviceKey(slice.metadata?.namespace ?? '', service);
    let names = resolved.get(key);
    if (!names) resolved.set(key, (names = new Map()));
    for (const p of slice.ports ?? []) {
      if (isTcp(p.protocol) && typeof p.port === 'number' && !names.has(p.name ?? '')) names.set(p.name ?? '', p.port);
    }
  }
  const out = new Map<string, ServicePort[]>();
  for (const svc of services) {
    const key = serviceKey(svc.metadata?.namespace ?? '', svc.metadata?.name ?? '');
    const ports: ServicePort[] = [];
    for (const p of svc.spec?.ports ?? []) {
      if (!isTcp(p.protocol) || typeof p.port !== 'number' || ports.some((x) => x.port === p.port)) continue;
      const target = p.targetPort ?? p.port;
      const targetPort = typeof target === 'number' ? target : resolved.get(key)?.get(p.name ?? '');
      if (targetPort !== undefined) ports.push(servicePortProtocol(p) === 'h2c' ? { port: p.port, targetPort, appProtocol: 'h2c' } : { port: p.port, targetPort });
    }
    if (ports.length) out.set(key, ports.sort((a, b) => a.port - b.port));
  }
  return out;
}

/** Each Service's cluster IPs (none for a headless one), by namespace/name. Pure, for tests. */
export function serviceAddressesFrom(services: Iterable<Service>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const svc of services) {
    const ips = (svc.spec?.clusterIPs ?? (svc.spec?.clusterIP ? [svc.spec.clusterIP] : [])).filter((ip) => isIP(ip) !== 0);
    if (ips.length) out.set(serviceKey(svc.metadata?.namespace ?? '', svc.metadata?.name ?? ''), ips);
  }
  return out;
}

/**
 * On Kubernetes the API server is the store: nothing is saved by the control plane. Config documents come from
 * the Route and Policy resources; writing them through the control plane's API is refused with a hint.
 */
export class KubeControlPlatform implements ControlPlatform {
  readonly name = 'kubernetes' as const;
  readonly pods: ListWatch<Pod>;
  readonly slices: ListWatch<EndpointSlice>;
  readonly services: ListWatch<Service>;
  readonly routes: ListWatch<MeshResource>;
  readonly policies: ListWatch<MeshResource>;
  private registry?: Registry;
  private applying = false;
  private scheduled = false;
  private warned = new Set<string>();

  constructor(
    kc: KubeConfig,
    private readonly trustDomain: string,
    private readonly o: ListWatchOptions = {},
  ) {
    const changed = () => this.schedule();
    this.pods = new ListWatch<Pod>(kc, '/api/v1/pods', changed, o);
    this.slices = new ListWatch<EndpointSlice>(kc, '/apis/discovery.k8s.io/v1/endpointslices', changed, o);
    this.services = new ListWatch<Service>(kc, '/api/v1/services', changed, o);
    this.routes = new ListWatch<MeshResource>(kc, `/apis/${CRD_GROUP}/${CRD_VERSION}/routes`, changed, o);
    this.policies = new ListWatch<MeshResource>(kc, `/apis/${CRD_GROUP}/${CRD_VERSION}/policies`, changed, o);
  }

  /** Lists everything once (so the first snapshot is complete), then keeps the registry current. */
  async start(registry: Registry): Promise<void> {
    await Promise.all([this.pods, this.slices, this.services, this.routes, this.policies].map((w) => w.start()));
    this.registry = registry;
    this.sync();
  }

  stop(): void {
    for (const w of [this.pods, this.slices, this.services, this.routes, this.policies]) w.stop();
  }

  /** Every running pod, for telemetry (see podRecords). */
  scrapeTargets(): EndpointRecord[] {
    return podRecords(this.pods.items.values(), this.slices.items.values(), this.trustDomain);
  }

  loadEndpoints(): EndpointRecord[] {
    return [];
  }

  saveEndpoints(): void {}

  endpointGone(): boolean {
    return false;
  }

  loadConfig(): unknown {
    return undefined;
  }

  saveConfig(kind: ConfigKind): void {
    if (this.applying) return;
    throw new HttpError(405, kind === 'settings'
      ? 'on kubernetes the control plane keeps no settings document'
      : `on kubernetes ${kind} are ${kind === 'routes' ? 'Route' : 'Policy'} resources: use 'mesh ${kind === 'routes' ? 'route' : 'policy'} --platform kubernetes' or kubectl apply`);
  }

  /** Coalesces a burst of watch events (a rollout) into one snapshot. */
  private schedule(): void {
    if (this.scheduled || !this.registry) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.sync();
    });
  }

  private sync(): void {
    const registry = this.registry;
    if (!registry) return;
    const endpoints = endpointsFrom(this.slices.items.values(), this.pods.items, this.trustDomain);
    // Only the meshed services' ports: a change to any other Service is no new snapshot.
    const meshedServices = new Set(endpoints.map((ep) => serviceKey(ep.namespace, ep.service)));
    const ports = servicePortsFrom(this.services.items.values(), this.slices.items.values());
    for (const key of ports.keys()) if (!meshedServices.has(key)) ports.delete(key);
    const addresses = serviceAddressesFrom(this.services.items.values());
    for (const key of addresses.keys()) if (!meshedServices.has(key)) addresses.delete(key);
    registry.replaceEndpoints(endpoints, ports, addresses);
    registry.setWorkloads(workloadNames(this.pods.items.values(), this.slices.items.values(), meshed));
    // An invalid resource is reported once, not at every sync while it stays.
    const warnings = new Set<string>();
    const config = crdConfig([...this.routes.items.values()], [...this.policies.items.values()], (l) => warnings.add(l));
    for (const w of warnings) if (!this.warned.has(w)) this.o.log?.(w);
    this.warned = warnings;
    this.applying = true;
    try {
      for (const kind of ['routes', 'policies'] as const) {
        if (JSON.stringify(registry.getConfig(kind) ?? { [kind]: [] }) !== JSON.stringify(config[kind])) registry.setConfig(kind, config[kind]);
      }
    } finally {
      this.applying = false;
    }
  }
}
