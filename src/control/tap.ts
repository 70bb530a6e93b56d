// The control plane's side of mesh tap: it keeps the open taps, tells each proxy (long-poll) the taps
// that select it, and hands the events the proxies report to whoever polls the tap (CLI or dashboard).
import { randomBytes } from 'node:crypto';
import type { TapEvent, TapPoll, TapSpec } from '../api/tap.js';
import type { EndpointRecord } from '../api/types.js';
import { HttpError } from '../util/http.js';

/** A resource a tap selects: TYPE/NAME in a namespace (deploy/reviews-v2, pod/<instance>, svc/reviews, ns/default). */
export interface TapTarget {
  kind: 'deploy' | 'pod' | 'svc' | 'ns';
  name: string;
  namespace: string;
}

const KINDS: Record<string, TapTarget['kind']> = {
  deploy: 'deploy', deployment: 'deploy', deployments: 'deploy', po: 'pod', pod: 'pod', pods: 'pod',
  svc: 'svc', service: 'svc', services: 'svc', ns: 'ns', namespace: 'ns', namespaces: 'ns',
};

export function parseTapTarget(text: string, namespace: string): TapTarget {
  const [kind, name, extra] = text.split('/');
  const k = KINDS[kind ?? ''];
  if (!k || !name || extra !== undefined) throw new HttpError(400, `cannot tap "${text}": name a resource as TYPE/NAME, e.g. deploy/reviews-v2, pod/NAME, svc/reviews or ns/default`);
  return k === 'ns' ? { kind: k, name, namespace: name } : { kind: k, name, namespace };
}

/** A deployment is service-version locally, the owning workload on Kubernetes. */
export function selects(t: TapTarget, ep: { namespace: string; service: string; version: string; instance: string; workload?: string }): boolean {
  if (ep.namespace !== t.namespace) return false;
  if (t.kind === 'ns') return true;
  if (t.kind === 'svc') return ep.service === t.name;
  if (t.kind === 'pod') return ep.instance === t.name;
  return ep.workload === t.name || `${ep.service}-${ep.version}` === t.name || ep.service === t.name;
}

interface Session {
  /** Who opened it (TapCaller.name): only they poll and close it. */
  owner: string;
  spec: TapSpec;
  target: TapTarget;
  events: TapPoll['events'];
  seq: number;
  dropped: number;
  polledAt: number;
  waiters: Set<() => void>;
}

const BUFFER = 2000;
const IDLE_MS = 15_000;
const MAX_TAPS = 64;
const MAX_RPS = 1000;

export class TapHub {
  private readonly sessions = new Map<string, Session>();
  private version = 0;
  private readonly proxyWaiters = new Set<() => void>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly endpoints: () => EndpointRecord[], private readonly redact: () => string[] = () => []) {
    this.sweeper = setInterval(() => this.sweep(), 2000);
    this.sweeper.unref();
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const id of [...this.sessions.keys()]) this.end(id);
  }

  /** The resource a GET /v1/tap query names. */
  static target(q: URLSearchParams): TapTarget {
    return parseTapTarget(q.get('target') ?? '', q.get('namespace') || 'default');
  }

  /** Opens a tap from the query of GET /v1/tap (or the dashboard's), for `owner`. */
  open(q: URLSearchParams, owner: string): TapPoll {
    if (this.sessions.size >= MAX_TAPS) throw new HttpError(429, `${MAX_TAPS} taps are open already; close one (Ctrl-C) and retry`);
    const namespace = q.get('namespace') || 'default';
    const target = TapHub.target(q);
    const maxRps = Number(q.get('maxRps') ?? 100);
    if (!Number.isFinite(maxRps) || maxRps <= 0 || maxRps > MAX_RPS) throw new HttpError(400, `max-rps must be a number from 1 to ${MAX_RPS}`);
    const spec: TapSpec = { id: randomBytes(12).toString('hex'), maxRps, redact: this.redact(), headers: q.get('headers') === 'true' };
    const to = q.get('to');
    if (to) {
      const t = parseTapTarget(to, q.get('toNamespace') || namespace);
      spec.to = t.kind === 'ns' ? { namespace: t.namespace } : t.kind === 'svc' ? { namespace: t.namespace, service: t.name }
        : t.kind === 'pod' ? { namespace: t.namespace, pod: t.name } : { namespace: t.namespace, deployment: t.name };
    }
    for (const [k, key] of [['method', 'method'], ['path', 'pathPrefix'], ['authority', 'authority']] as const) {
      const v = q.get(k);
      if (v) spec[key] = v;
    }
    if (spec.method) spec.method = spec.method.toUpperCase();
    this.sessions.set(spec.id, { owner, spec, target, events: [], seq: 0, dropped: 0, polledAt: Date.now(), waiters: new Set() });
    this.changed();
    return { id: spec.id, events: [], next: 0, dropped: 0, proxies: this.proxiesOf(target) };
  }

  /** Events after `after`, waiting up to waitMs for the first. */
  async poll(id: string, after: number, waitMs: number, owner: string): Promise<TapPoll> {
    const s = this.sessions.get(id);
    if (!s || s.owner !== owner) throw new HttpError(404, `no open tap ${id} (it closes when nobody polls it for ${IDLE_MS / 1000} s)`);
    s.polledAt = Date.now();
    if (!s.events.some((e) => e.seq > after) && waitMs > 0) {
      await new Promise<void>((resolve) => {
        // Unref'd: a long-poll left waiting when the server closes must not hold the process open.
        const t = setTimeout(done, waitMs).unref();
        function done() {
          clearTimeout(t);
          s!.waiters.delete(done);
          resolve();
        }
        s.waiters.add(done);
      });
    }
    s.polledAt = Date.now();
    const events = s.events.filter((e) => e.seq > after);
    return { id, events, next: s.seq, dropped: s.dropped, proxies: this.proxiesOf(s.target) };
  }

  end(id: string, owner?: string): boolean {
    const s = this.sessions.get(id);
    if (!s || (owner !== undefined && s.owner !== owner)) return false;
    this.sessions.delete(id);
    for (const w of [...s.waiters]) w();
    this.changed();
    return true;
  }

  /** The taps that select this proxy (a long-poll answer for GET /v1/tap/watch). */
  async watch(instance: string, since: string, waitMs: number): Promise<{ version: string; taps: TapSpec[] } | null> {
    if (since === String(this.version) && waitMs > 0) {
      await new Promise<void>((resolve) => {
        const proxyWaiters = this.proxyWaiters;
        const t = setTimeout(done, waitMs).unref();
        function done() {
          clearTimeout(t);
          proxyWaiters.delete(done);
          resolve();
        }
        proxyWaiters.add(done);
      });
      if (since === String(this.version)) return null;
    }
    const ep = this.endpoints().find((e) => e.instance === instance);
    const taps = ep ? [...this.sessions.values()].filter((s) => selects(s.target, ep)).map((s) => s.spec) : [];
    return { version: String(this.version), taps };
  }

  /** Events reported by a proxy; answers which of its taps are still open. */
  report(instance: string, events: Record<string, TapEvent[]>): string[] {
    const ep = this.endpoints().find((e) => e.instance === instance);
    for (const [id, list] of Object.entries(events)) {
      const s = this.sessions.get(id);
      // Only taps that select this proxy take its events: a proxy cannot feed another's tap.
      if (!s || !ep || !selects(s.target, ep) || !Array.isArray(list)) continue;
      for (const e of list.slice(0, s.spec.maxRps * 5)) {
        s.events.push({ ...e, seq: ++s.seq, proxy: instance });
      }
      if (s.events.length > BUFFER) {
        s.dropped += s.events.length - BUFFER;
        s.events.splice(0, s.events.length - BUFFER);
      }
      for (const w of [...s.waiters]) w();
    }
    return ep ? [...this.sessions.values()].filter((s) => selects(s.target, ep)).map((s) => s.spec.id) : [];
  }

  private proxiesOf(t: TapTarget): number {
    return this.endpoints().filter((e) => selects(t, e)).length;
  }

  private changed(): void {
    this.version++;
    for (const w of [...this.proxyWaiters]) w();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, s] of this.sessions) {
      // Events nobody will read are dropped as they age; a tap nobody polls closes.
      if (now - s.polledAt > IDLE_MS) this.end(id);
      else if (s.events.length && now - s.events[0]!.at > 60_000) s.events.splice(0, s.events.findIndex((e) => now - e.at <= 60_000) >>> 0);
    }
  }
}
