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
}

export interface ServiceInfo {
  namespace: string;
  name: string;
  endpoints: EndpointInfo[];
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
}

export const serviceKey = (namespace: string, name: string) => `${namespace}/${name}`;

export function emptySnapshot(trustDomain: string): Snapshot {
  return { version: '0', trustDomain, services: [] };
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Kubernetes-style names, so the same workload names work on both platforms. */
export function checkName(value: string, what: string): string {
  if (!DNS_LABEL.test(value) || value.length > 63) {
    throw new Error(`${what} '${value}' is not a valid name: use lower-case letters, digits and '-', starting and ending with a letter or digit`);
  }
  return value;
}
