// The proxy's routing table: built from each config snapshot, kept between snapshots so endpoint
// state (load, latency, ejections) survives pushes.
import { isIP } from 'node:net';
import { serviceKey, type Snapshot } from '../model/snapshot.js';
import { DEFAULT_BREAKER, Target, type Endpoint, type StatsFor } from './balancer.js';
import { ServiceRouter, type CompiledRule } from './routing.js';
import type { Pinned, RouteTable } from './layers/route.js';
import { GRPC_RETRY_ON, type GrpcRetryOn } from '../model/route.js';
import { httpStatusOfGrpc } from './wire/grpc-status.js';

/** A service's rules as the proxy needs them, adapted from the stored route model. */
export interface RuleSpec {
  matches?: { headers?: { name: string; exact?: string; regex?: string }[]; pathPrefix?: string; method?: string }[];
  backends: { version: string; weight: number }[];
  timeoutMs?: number;
  retries?: { attempts: number; on?: string[] };
  fault?: { delay?: { ms: number; percent: number }; abort?: { status?: number; grpcStatus?: number; percent: number } };
}

/** Everything about one service's traffic the route model sets. */
export interface RouteSettings {
  rules: RuleSpec[];
  retryBudget?: { ratio: number; minPerSecond: number };
  consecutiveFailures?: number;
}

export type RouteSettingsFor = (snapshot: Snapshot, namespace: string, service: string) => RouteSettings;

export class RoutingTable {
  private readonly routers = new Map<string, ServiceRouter>();
  /** Each endpoint as a target of its own (kept with the endpoint's state), for traffic to its address. */
  private readonly pinned = new WeakMap<Endpoint, Target>();
  current: RouteTable = { hosts: new Map(), fallback: null };

  constructor(
    private readonly trustDomain: string,
    private readonly ownNamespace: string,
    private readonly statsFor: StatsFor,
    private readonly settingsFor: RouteSettingsFor,
    private readonly defaultService?: string,
  ) {}

  private router(namespace: string, name: string): ServiceRouter {
    const key = serviceKey(namespace, name);
    let r = this.routers.get(key);
    if (!r) this.routers.set(key, (r = new ServiceRouter(new Target(namespace, name, this.trustDomain, this.statsFor))));
    return r;
  }

  apply(s: Snapshot): void {
    const hosts = new Map<string, ServiceRouter>();
    const pods = new Map<string, Pinned>();
    const shared = new Set<string>();
    const seen = new Set<string>();
    for (const svc of s.services) {
      seen.add(serviceKey(svc.namespace, svc.name));
      const r = this.router(svc.namespace, svc.name);
      r.target.update(svc.endpoints);
      this.compile(r, this.settingsFor(s, svc.namespace, svc.name));
      for (const name of hostNames(svc.name, svc.namespace, this.ownNamespace)) hosts.set(name, r);
      // A captured connection's original destination (ip:port) and a request for http://<cluster IP>/ name it too.
      for (const ip of Array.isArray(svc.addresses) ? svc.addresses : []) {
        const family = typeof ip === 'string' ? isIP(ip) : 0;
        if (family !== 0) hosts.set(family === 6 ? `[${ip.toLowerCase()}]` : ip, r);
      }
      for (const e of r.target.endpoints) this.pin(pods, shared, r, e);
    }
    for (const [key, r] of this.routers) {
      if (seen.has(key)) continue;
      r.target.update([]);
      this.compile(r, { rules: [] });
    }
    const fallback = this.defaultService ? this.router(this.ownNamespace, this.defaultService) : null;
    this.current = { hosts, fallback, pods };
  }

  /**
   * A pod's address names that endpoint (of the first of its services that lists it). Never a loopback address (every
   * local workload has one) nor an address two pods share (host-network pods): traffic to those stays egress.
   */
  private pin(pods: Map<string, Pinned>, shared: Set<string>, r: ServiceRouter, e: Endpoint): void {
    const a = e.info.address;
    const family = isIP(a);
    if (family === 0 || a.startsWith('127.') || (family === 6 && (a === '::1' || a.toLowerCase().startsWith('::ffff:127.')))) return;
    const key = family === 6 ? `[${a.toLowerCase()}]` : a;
    if (shared.has(key)) return;
    const had = pods.get(key);
    if (had !== undefined) {
      if (had.target.endpoints[0]!.info.instance !== e.info.instance) {
        pods.delete(key);
        shared.add(key);
      }
      return;
    }
    let t = this.pinned.get(e);
    if (t === undefined) {
      this.pinned.set(e, (t = new Target(e.info.namespace, e.info.service, this.trustDomain, this.statsFor, e.info.version)));
      t.setEndpoints([e]);
    }
    pods.set(key, { router: r, target: t });
  }

  private compile(r: ServiceRouter, settings: RouteSettings): void {
    const specs = settings.rules;
    r.setBudget(settings.retryBudget?.ratio ?? 0.2, settings.retryBudget?.minPerSecond ?? 10);
    const breaker = { ...DEFAULT_BREAKER, consecutiveFailures: settings.consecutiveFailures ?? DEFAULT_BREAKER.consecutiveFailures };
    if (breaker.consecutiveFailures !== r.target.breaker.consecutiveFailures) {
      r.target.breaker = breaker;
      for (const e of r.target.endpoints) e.breaker = breaker;
    }
    const subset = (version: string): Target => {
      let t = r.subsets.get(version);
      if (!t) r.subsets.set(version, (t = new Target(r.target.namespace, r.target.name, this.trustDomain, this.statsFor, version)));
      t.setEndpoints(r.target.endpoints.filter((e) => e.info.version === version));
      return t;
    };
    for (const t of r.subsets.values()) t.setEndpoints([]);
    r.rules = specs.map((spec): CompiledRule => {
      const backends = spec.backends.filter((b) => b.weight > 0).map((b) => ({ version: b.version, weight: b.weight, target: subset(b.version) }));
      const on = spec.retries?.on ?? ['connect-failure', '5xx'];
      return {
        matches: spec.matches && spec.matches.length
          ? spec.matches.map((m) => ({
            headers: (m.headers ?? []).map((h) => ({ name: h.name.toLowerCase(), exact: h.exact, regex: h.regex !== undefined ? new RegExp(h.regex) : undefined })),
            pathPrefix: m.pathPrefix,
            method: m.method?.toUpperCase(),
          }))
          : null,
        backends,
        totalWeight: backends.reduce((a, b) => a + b.weight, 0),
        timeoutMs: spec.timeoutMs ?? 0,
        retry: spec.retries && spec.retries.attempts > 0
          ? { attempts: spec.retries.attempts, on5xx: on.includes('5xx'), onConnect: on.includes('connect-failure'), grpcOn: grpcMask(on) }
          : null,
        fault: spec.fault
          ? {
            delayMs: spec.fault.delay?.ms ?? 0, delayPercent: spec.fault.delay?.percent ?? 0,
            abortStatus: abortStatus(spec.fault.abort), abortGrpc: spec.fault.abort?.grpcStatus ?? 0, abortPercent: spec.fault.abort?.percent ?? 0,
          }
          : null,
      };
    }).filter((rule) => rule.backends.length > 0);
  }
}

/** The gRPC statuses a rule retries on, as a bit per code (1 << code). */
function grpcMask(on: string[]): number {
  let mask = 0;
  for (const name of on) {
    const code = GRPC_RETRY_ON[name as GrpcRetryOn];
    if (code !== undefined) mask |= 1 << code;
  }
  return mask;
}

/** An abort's HTTP status: its own, or for a gRPC status the one Envoy maps it to (what a caller that is not gRPC gets). */
function abortStatus(abort: { status?: number; grpcStatus?: number } | undefined): number {
  if (abort?.grpcStatus !== undefined) return httpStatusOfGrpc(abort.grpcStatus);
  return abort?.status ?? 503;
}

/** The names a service answers to, as Kubernetes DNS would resolve them from `fromNamespace`. */
export function hostNames(name: string, namespace: string, fromNamespace: string): string[] {
  const names = [`${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.cluster.local`];
  if (namespace === fromNamespace) names.push(name);
  return names;
}
