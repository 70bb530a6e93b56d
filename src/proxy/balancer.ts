// A service's endpoints and how one is chosen: power of two choices over peak-EWMA latency × load
// (as Linkerd balances), with failure accrual that ejects an endpoint for a jittered back-off and
// probes it before it returns, and a per-endpoint concurrency limit that sheds load fast.
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate, SecureContext } from 'node:tls';
import type { TlsOptions } from './wire/mux-client.js';
import type { EndpointInfo } from '../model/snapshot.js';
import { PeerIdentityError, verifyPeer } from '../identity/spiffe.js';
import type { RequestStats, TcpStats } from './metrics.js';
import { ProxyError } from './exchange.js';

/** Makes the stats an endpoint (or, with no endpoint, a service or one version of it) is counted under. */
export type StatsFor = ((namespace: string, service: string, ep?: EndpointInfo, version?: string) => RequestStats) & {
  /** Connection stats per destination endpoint, when the proxy keeps them. */
  tcp?: (ep: EndpointInfo) => TcpStats;
};

export interface BreakerSettings {
  /** Consecutive failures that eject an endpoint (Linkerd's failure accrual: 7). */
  consecutiveFailures: number;
  minEjectMs: number;
  maxEjectMs: number;
  /** Requests in flight per endpoint before excess load is shed with 503. */
  maxInflight: number;
}

export const DEFAULT_BREAKER: BreakerSettings = { consecutiveFailures: 7, minEjectMs: 1000, maxEjectMs: 60_000, maxInflight: 1000 };

const DECAY_MS = 10_000;
/** One cost must be below this share of the other to win outright. */
const TIE = 0.75;
const DEFAULT_RTT_MS = 5;

export class Endpoint {
  inflight = 0;
  /** Consecutive failures since the last success. */
  failures = 0;
  /** Times ejected in a row; sets the back-off. */
  ejections = 0;
  ejectedUntil = 0;
  /** After an ejection ends, one request probes the endpoint before it takes full load. */
  probing = false;
  private ewma = DEFAULT_RTT_MS;
  private stamp = 0;
  /** Checks the peer is the identity the control plane said serves this endpoint. */
  readonly checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined;
  readonly servername: string;
  readonly stats: RequestStats;
  /** Connections to this endpoint are counted here (the transport tracks them as it opens them). */
  readonly tcp: TcpStats | undefined;

  constructor(readonly info: EndpointInfo, trustDomain: string, statsFor: StatsFor, public breaker: BreakerSettings) {
    this.stats = statsFor(info.namespace, info.service, info);
    this.tcp = statsFor.tcp?.(info);
    this.servername = `${info.service}.${info.namespace}.mesh.local`;
    const want = info.identity;
    this.checkServerIdentity = (_host, cert) => {
      try {
        const id = verifyPeer(new X509Certificate(cert.raw), trustDomain);
        const got = `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
        return got === want ? undefined : new PeerIdentityError(`peer is ${got}, expected ${want}`);
      } catch (err) {
        return err as Error;
      }
    };
  }

  private tlsOptions: TlsOptions | null = null;

  /** What a new connection to this endpoint needs, kept until the client certificate changes. */
  tls(secureContext: SecureContext): TlsOptions {
    const t = this.tlsOptions;
    if (t !== null && t.secureContext === secureContext) return t;
    return (this.tlsOptions = { servername: this.servername, checkServerIdentity: this.checkServerIdentity, secureContext });
  }

  /** Expected cost of one more request: peak-EWMA latency scaled by the load already there. */
  cost(now: number): number {
    const elapsed = now - this.stamp;
    const decayed = elapsed > 0 ? this.ewma * Math.exp(-elapsed / DECAY_MS) : this.ewma;
    return Math.max(decayed, 0.01) * (this.inflight + 1);
  }

  available(now: number): boolean {
    if (this.ejectedUntil > now) return false;
    if (this.probing) return this.inflight === 0;
    return this.inflight < this.breaker.maxInflight;
  }

  /** A success; `rttMs` < 0 when the request's time is not a latency sample. */
  succeeded(rttMs: number, now: number): void {
    this.failures = 0;
    if (this.probing || this.ejections) {
      this.probing = false;
      this.ejections = 0;
    }
    if (rttMs < 0) return;
    const elapsed = now - this.stamp;
    // Peak-sensitive: a slower sample takes over at once, faster ones pull the average down slowly.
    if (rttMs > this.ewma) this.ewma = rttMs;
    else {
      const w = Math.exp(-Math.max(elapsed, 0) / DECAY_MS);
      this.ewma = this.ewma * w + rttMs * (1 - w);
    }
    this.stamp = now;
  }

  /** A refused connection ejects at once; other failures accrue to the threshold. Returns true on ejection. */
  failed(now: number, connect: boolean): boolean {
    this.failures++;
    if (connect || this.probing || this.failures >= this.breaker.consecutiveFailures) {
      this.eject(now);
      return true;
    }
    return false;
  }

  private eject(now: number): void {
    const base = Math.min(this.breaker.minEjectMs * 2 ** this.ejections, this.breaker.maxEjectMs);
    this.ejections++;
    this.ejectedUntil = now + base / 2 + Math.random() * (base / 2);
    this.failures = 0;
    this.probing = true;
  }
}

export class Target {
  endpoints: Endpoint[] = [];
  /** Requests that never reached an endpoint (none available). */
  readonly stats: RequestStats;
  breaker: BreakerSettings = DEFAULT_BREAKER;

  /** version: a route's subset; what fails before an endpoint is picked (a fault, none available) counts against it. */
  constructor(readonly namespace: string, readonly name: string, private readonly trustDomain: string, private readonly statsFor: StatsFor, version?: string) {
    this.stats = statsFor(namespace, name, undefined, version);
  }

  /** Applies a new endpoint list, keeping the state of endpoints that stay. */
  update(infos: EndpointInfo[]): void {
    const old = new Map(this.endpoints.map((e) => [e.info.instance, e]));
    this.endpoints = infos.map((info) => {
      const prev = old.get(info.instance);
      if (prev && sameInfo(prev.info, info)) {
        prev.breaker = this.breaker;
        return prev;
      }
      return new Endpoint(info, this.trustDomain, this.statsFor, this.breaker);
    });
  }

  /** A view on some of the endpoints (a version subset), sharing their state. */
  setEndpoints(eps: Endpoint[]): void {
    this.endpoints = eps;
  }

  pick(): Endpoint | null {
    const eps = this.endpoints;
    const n = eps.length;
    if (n === 0) return null;
    const now = Date.now();
    if (n === 1) return eps[0]!.available(now) ? eps[0]! : null;
    const i = (Math.random() * n) | 0;
    let j = (Math.random() * (n - 1)) | 0;
    if (j >= i) j++;
    let a: Endpoint | null = eps[i]!;
    let b: Endpoint | null = eps[j]!;
    if (!a.available(now)) a = null;
    if (!b.available(now)) b = null;
    if (a && b) {
      // Costs within measurement noise of each other are a tie, broken at random: otherwise
      // sequential traffic sticks to whichever endpoint happened to measure a hair faster.
      const ca = a.cost(now);
      const cb = b.cost(now);
      if (ca < cb * TIE) return a;
      if (cb < ca * TIE) return b;
      return Math.random() < 0.5 ? a : b;
    }
    if (a || b) return a ?? b;
    // Both samples unavailable: a bounded scan finds any that is.
    let best: Endpoint | null = null;
    let bestCost = Infinity;
    for (const e of eps) {
      if (!e.available(now)) continue;
      const c = e.cost(now);
      if (c < bestCost) {
        best = e;
        bestCost = c;
      }
    }
    return best;
  }

  /** Why pick() found nothing: the 503 to answer with. */
  unavailable(): ProxyError {
    const now = Date.now();
    const svc = `${this.name}.${this.namespace}`;
    if (this.endpoints.length === 0) return new ProxyError('no_endpoints', `no endpoints for service ${svc}`);
    if (this.endpoints.every((e) => e.ejectedUntil > now)) return new ProxyError('no_endpoints', `all endpoints of service ${svc} are ejected (failing)`);
    return new ProxyError('overloaded', `endpoints of service ${svc} are at their concurrency limit`);
  }
}

function sameInfo(a: EndpointInfo, b: EndpointInfo): boolean {
  return a.address === b.address && a.port === b.port && a.identity === b.identity && a.version === b.version;
}
