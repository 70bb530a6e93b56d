// Which endpoints serve which service: registered by proxies, kept alive by heartbeats (leases).
import { EventEmitter } from 'node:events';
import type { ConfigKind, ServiceInfo, ServicePort, Snapshot, WorkloadNames } from '../model/snapshot.js';
import type { EndpointRecord } from '../api/types.js';
import { serviceKey } from '../model/snapshot.js';
import type { ControlPlatform } from './platform.js';

export class Registry extends EventEmitter {
  private readonly endpoints = new Map<string, EndpointRecord>();
  private readonly leases = new Map<string, number>();
  private readonly epoch = Date.now().toString(36);
  private counter = 0;
  private snap: Snapshot;
  private sweeper: NodeJS.Timeout;
  private readonly config: Partial<Record<ConfigKind, unknown>> = {};
  /** Instances set by replaceEndpoints (the platform's own view), as opposed to registered by proxies. */
  private pushed = new Set<string>();
  private platformSourced = false;
  /** Service ports by namespace/name, when the platform knows them (Kubernetes Services). */
  private servicePorts: ReadonlyMap<string, ServicePort[]> = new Map();
  private servicePortsKey = '[]';
  /** Service cluster IPs by namespace/name (Kubernetes): transparent capture sees them as original destinations. */
  private serviceAddresses: ReadonlyMap<string, string[]> = new Map();
  private serviceAddressesKey = '[]';

  constructor(
    private readonly trustDomain: string,
    private readonly platform: ControlPlatform,
    private readonly leaseMs = 6000,
  ) {
    super();
    const now = Date.now();
    for (const ep of platform.loadEndpoints()) {
      this.endpoints.set(ep.instance, ep);
      this.leases.set(ep.instance, now + leaseMs);
    }
    for (const kind of ['routes', 'policies', 'settings'] as const) {
      const v = platform.loadConfig(kind);
      if (v !== undefined) this.config[kind] = v;
    }
    this.snap = this.build();
    this.sweeper = setInterval(() => this.sweep(), 1000);
    this.sweeper.unref();
  }

  get snapshot(): Snapshot {
    return this.snap;
  }

  list(): EndpointRecord[] {
    return [...this.endpoints.values()];
  }

  /** Registers or refreshes; the snapshot changes only when the endpoint itself does. */
  upsert(ep: EndpointRecord): void {
    this.leases.set(ep.instance, Date.now() + this.leaseMs);
    ep.lastSeen = new Date().toISOString();
    const old = this.endpoints.get(ep.instance);
    if (old && sameEndpoint(old, ep)) {
      // Not a change to the mesh, so no new snapshot: only what the proxy has applied.
      old.configVersion = ep.configVersion;
      old.lastSeen = ep.lastSeen;
      return;
    }
    this.endpoints.set(ep.instance, ep);
    this.changed();
  }

  /**
   * Replaces the endpoints a platform is the source of (Kubernetes: EndpointSlices and Pods), which need no
   * heartbeat lease; endpoints proxies registered themselves are kept. With servicePorts (namespace/name → the
   * Service's ports), a service in the snapshot also carries its ports, and with addresses its cluster IPs. A new
   * snapshot only when any of them changes.
   */
  replaceEndpoints(list: EndpointRecord[], servicePorts?: ReadonlyMap<string, ServicePort[]>, addresses?: ReadonlyMap<string, string[]>): void {
    const next = new Map(list.map((ep) => [ep.instance, ep]));
    let dirty = false;
    const keyOf = (m: ReadonlyMap<string, unknown>) => JSON.stringify([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    if (servicePorts) {
      const key = keyOf(servicePorts);
      if (key !== this.servicePortsKey) {
        this.servicePorts = servicePorts;
        this.servicePortsKey = key;
        dirty = true;
      }
    }
    if (addresses) {
      const key = keyOf(addresses);
      if (key !== this.serviceAddressesKey) {
        this.serviceAddresses = addresses;
        this.serviceAddressesKey = key;
        dirty = true;
      }
    }
    for (const instance of this.pushed) {
      if (next.has(instance)) continue;
      this.endpoints.delete(instance);
      this.leases.delete(instance);
      dirty = true;
    }
    for (const [instance, ep] of next) {
      const old = this.endpoints.get(instance);
      this.leases.set(instance, Infinity);
      if (old && sameEndpoint(old, ep)) continue;
      this.endpoints.set(instance, ep);
      dirty = true;
    }
    this.pushed = new Set(next.keys());
    if (!this.platformSourced) dirty = this.platformSourced = true;
    if (dirty) this.changed();
  }

  remove(instance: string): boolean {
    this.leases.delete(instance);
    if (!this.endpoints.delete(instance)) return false;
    this.changed();
    return true;
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  private identityEpoch: string | undefined;
  private workloads: WorkloadNames | undefined;
  private workloadsKey = '';

  /** What policy names mean on the platform (Kubernetes); a new snapshot only when they change. */
  setWorkloads(w: WorkloadNames): void {
    const key = JSON.stringify(w);
    if (key === this.workloadsKey) return;
    this.workloads = w;
    this.workloadsKey = key;
    this.changed();
  }

  private traces: Snapshot['traces'];

  /** The control plane's own span receiver, for proxies without a collector (see Snapshot.traces). */
  setTraces(t: Snapshot['traces']): void {
    this.traces = t;
    this.snap = this.build();
    this.emit('change', this.snap);
  }

  /** Marks a new trust bundle or issuer in the snapshot (see Snapshot.identityEpoch). */
  setIdentityEpoch(epoch: string): void {
    if (epoch === this.identityEpoch) return;
    this.identityEpoch = epoch;
    this.snap = this.build();
    this.emit('change', this.snap);
  }

  getConfig(kind: ConfigKind): unknown {
    return this.config[kind];
  }

  /** Stores a config document (validated by the caller) and pushes a new snapshot. */
  setConfig(kind: ConfigKind, value: unknown): void {
    this.platform.saveConfig(kind, value);
    this.config[kind] = value;
    this.snap = this.build();
    this.emit('change', this.snap);
  }

  private sweep(): void {
    const now = Date.now();
    let dirty = false;
    for (const [instance, ep] of this.endpoints) {
      if ((this.leases.get(instance) ?? 0) < now || this.platform.endpointGone(ep)) {
        this.endpoints.delete(instance);
        this.leases.delete(instance);
        dirty = true;
      }
    }
    if (dirty) this.changed();
  }

  private changed(): void {
    this.snap = this.build();
    this.platform.saveEndpoints(this.list());
    this.emit('change', this.snap);
  }

  private build(): Snapshot {
    const services = new Map<string, ServiceInfo>();
    const sorted = [...this.endpoints.values()].sort((a, b) => a.instance.localeCompare(b.instance));
    for (const ep of sorted) {
      if (ep.port === 0) continue;
      // Once the platform is the source of endpoints, a proxy's own registration (address as the control plane
      // saw it) is kept for heartbeats and lists but never routed to.
      if (this.platformSourced && !this.pushed.has(ep.instance)) continue;
      const key = serviceKey(ep.namespace, ep.service);
      let svc = services.get(key);
      if (!svc) {
        const ports = this.servicePorts.get(key);
        const addresses = this.serviceAddresses.get(key);
        services.set(key, (svc = { namespace: ep.namespace, name: ep.service, endpoints: [], ...(ports ? { ports } : {}), ...(addresses ? { addresses } : {}) }));
      }
      const { instance, namespace, service, version, address, port, identity, workload } = ep;
      svc.endpoints.push({ instance, namespace, service, version, address, port, identity, ...(workload ? { workload } : {}) });
    }
    return { version: `${this.epoch}.${++this.counter}`, trustDomain: this.trustDomain, services: [...services.values()], config: { ...this.config }, ...(this.identityEpoch ? { identityEpoch: this.identityEpoch } : {}), ...(this.workloads ? { workloads: this.workloads } : {}), ...(this.traces ? { traces: this.traces } : {}) };
  }
}

function sameEndpoint(a: EndpointRecord, b: EndpointRecord): boolean {
  return a.address === b.address && a.port === b.port && a.version === b.version && a.identity === b.identity && a.workload === b.workload &&
    a.service === b.service && a.namespace === b.namespace && a.pid === b.pid && a.admin === b.admin;
}
