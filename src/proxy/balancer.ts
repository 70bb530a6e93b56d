// A service's endpoints and how one is chosen: power of two choices over in-flight load,
// with endpoints that refuse connections taken out of rotation for a back-off.
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import type { EndpointInfo } from '../model/snapshot.js';
import { verifyPeer } from '../identity/spiffe.js';
import type { RequestStats } from './metrics.js';

/** Makes the stats an endpoint (or, with no endpoint, a service) is counted under. */
export type StatsFor = (namespace: string, service: string, ep?: EndpointInfo) => RequestStats;

const MAX_BACKOFF_MS = 30_000;

export class Endpoint {
  inflight = 0;
  failures = 0;
  downUntil = 0;
  /** Checks the peer is the identity the control plane said serves this endpoint. */
  readonly checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined;
  readonly servername: string;
  readonly stats: RequestStats;

  constructor(readonly info: EndpointInfo, trustDomain: string, statsFor: StatsFor) {
    this.stats = statsFor(info.namespace, info.service, info);
    this.servername = `${info.service}.${info.namespace}.mesh.local`;
    const want = info.identity;
    this.checkServerIdentity = (_host, cert) => {
      try {
        const id = verifyPeer(new X509Certificate(cert.raw), trustDomain);
        const got = `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
        return got === want ? undefined : new Error(`peer is ${got}, expected ${want}`);
      } catch (err) {
        return err as Error;
      }
    };
  }

  markDown(now: number): void {
    this.failures++;
    const base = Math.min(1000 * 2 ** (this.failures - 1), MAX_BACKOFF_MS);
    this.downUntil = now + base / 2 + Math.random() * (base / 2);
  }

  markUp(): void {
    if (this.failures !== 0) {
      this.failures = 0;
      this.downUntil = 0;
    }
  }
}

export class Target {
  endpoints: Endpoint[] = [];
  /** Requests that never reached an endpoint (none available). */
  readonly stats: RequestStats;

  constructor(readonly namespace: string, readonly name: string, private readonly trustDomain: string, private readonly statsFor: StatsFor) {
    this.stats = statsFor(namespace, name);
  }

  /** Applies a new endpoint list, keeping the state of endpoints that stay. */
  update(infos: EndpointInfo[]): void {
    const old = new Map(this.endpoints.map((e) => [e.info.instance, e]));
    this.endpoints = infos.map((info) => {
      const prev = old.get(info.instance);
      return prev && sameInfo(prev.info, info) ? prev : new Endpoint(info, this.trustDomain, this.statsFor);
    });
  }

  pick(): Endpoint | null {
    const eps = this.endpoints;
    const n = eps.length;
    if (n === 0) return null;
    const now = Date.now();
    if (n === 1) return eps[0]!.downUntil <= now ? eps[0]! : null;
    let a = eps[(Math.random() * n) | 0]!;
    let b = eps[(Math.random() * n) | 0]!;
    if (a.downUntil > now) a = b;
    if (b.downUntil > now) b = a;
    if (a.downUntil > now) {
      // Both samples down: fall back to a scan, which is rare and bounded by the endpoint count.
      let best: Endpoint | null = null;
      for (const e of eps) if (e.downUntil <= now && (!best || e.inflight < best.inflight)) best = e;
      return best;
    }
    return a.inflight <= b.inflight ? a : b;
  }
}

function sameInfo(a: EndpointInfo, b: EndpointInfo): boolean {
  return a.address === b.address && a.port === b.port && a.identity === b.identity && a.version === b.version;
}
