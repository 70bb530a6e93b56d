// The versioned config snapshot the control plane pushes to every proxy.

export interface EndpointInfo {
  /** Instance name, unique in the mesh (a pod name on Kubernetes). */
  instance: string;
  namespace: string;
  service: string;
  version: string;
  address: string;
  /** The peer proxy's inbound (mTLS) port. */
  port: number;
  identity: string;
  /** The workload the endpoint belongs to (Kubernetes: its Deployment, StatefulSet, ...); else service-version. */
  workload?: string;
}

/** A service port and the container port it targets (Kubernetes: a named targetPort already resolved). */
export interface ServicePort {
  port: number;
  targetPort: number;
  /** The app behind targetPort serves HTTP/2 cleartext (the Service port's appProtocol or name says so); absent: HTTP/1.1. */
  appProtocol?: 'h2c';
}

export interface ServiceInfo {
  namespace: string;
  name: string;
  endpoints: EndpointInfo[];
  /**
   * Kubernetes only: the Service's TCP ports. Peers dial a pod's one inbound port whatever the service port, so
   * its sidecar maps the port a request's Host names to the app port it targets. Absent in older snapshots.
   */
  ports?: ServicePort[];
  /**
   * Kubernetes only: the Service's cluster IPs. An app's connection to one, captured by mesh-init's iptables rules, is
   * for this service (its original destination, read by the outbound sidecar). Absent in older snapshots.
   */
  addresses?: string[];
}

/** Config documents the control plane stores and pushes, by kind (routes, policies, ...). */
export type ConfigKind = 'routes' | 'policies' | 'settings';

export interface Snapshot {
  /** Opaque; a proxy asks for changes since the one it has. */
  version: string;
  trustDomain: string;
  services: ServiceInfo[];
  /**
   * Changes when the trust anchors or the issuer do: proxies renew their certificate at once
   * instead of at 70% of its life, so a rotation phase takes seconds, not hours.
   */
  identityEpoch?: string;
  /** Stored config by kind; a kind never set is absent. Shapes live in src/model/<kind>.ts. */
  config?: Partial<Record<ConfigKind, unknown>>;
  /**
   * Kubernetes only: what policy names mean there, where a workload's identity (its pods' ServiceAccount) need not
   * be named like its Service. Absent on the local platform, where a workload's identity is its service's name.
   */
  workloads?: WorkloadNames;
  /**
   * The control plane's own span receiver: where proxies export spans (OTLP/HTTP JSON) when no collector is
   * configured, starting at most `perSecond` new traces a second each (traces they join are all kept). `collector` is
   * a URL (local platform: a receiver on 127.0.0.1), or CONTROL_COLLECTOR: POST /v1/traces on the control plane's own
   * API, over its TLS with the proxy's certificate (Kubernetes, where a pod cannot reach the control's loopback).
   */
  traces?: { collector: string; perSecond: number };
}

export interface WorkloadNames {
  /** `ns/name` of a Service or a workload → the ServiceAccounts of its live pods. */
  identities: Record<string, string[]>;
  /** `ns/pod` of each meshed pod → its workload and the Services that select it. */
  pods: Record<string, { workload: string; services: string[] }>;
}

export const serviceKey = (namespace: string, name: string) => `${namespace}/${name}`;

const isPort = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;

/**
 * A service entry's port → targetPort map (empty when it has none). The ports come over the wire: an entry that is
 * not two valid port numbers makes the whole list invalid, reported through the error and otherwise ignored.
 */
export function servicePortMap(svc: ServiceInfo | undefined): { map: Map<number, number>; error?: string } {
  const map = new Map<number, number>();
  const ports: unknown = svc?.ports;
  if (ports === undefined) return { map };
  const bad = (why: string) => ({ map: new Map<number, number>(), error: `service ${svc!.namespace}/${svc!.name}: ${why}; its port map is ignored` });
  if (!Array.isArray(ports)) return bad('ports is not a list');
  for (const [i, p] of ports.entries()) {
    const { port, targetPort } = (p ?? {}) as Partial<ServicePort>;
    if (!isPort(port) || !isPort(targetPort)) return bad(`ports[${i}] is not {port, targetPort} with ports 1-65535`);
    if (map.has(port)) return bad(`ports[${i}] names port ${port} twice`);
    map.set(port, targetPort);
  }
  return { map };
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Kubernetes-style names, so the same workload names work on both platforms. */
export function checkName(value: string, what: string): string {
  if (!DNS_LABEL.test(value) || value.length > 63) {
    throw new Error(`${what} '${value}' is not a valid name: use lower-case letters, digits and '-', starting and ending with a letter or digit`);
  }
  return value;
}

/** Snapshot.traces.collector when proxies send their spans to the control plane's API itself. */
export const CONTROL_COLLECTOR = 'control';
