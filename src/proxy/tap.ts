// Live request tapping (mesh tap): the control plane tells this proxy which taps concern it over a
// long-poll; only while one is active does a request cost more than the one `tap.on` check.
// Headers named in REDACTED (and the control plane's list) leave the proxy as "[redacted]"; bodies never do.
import type { Exchange } from './exchange.js';
import type { ControlClient } from '../api/client.js';
import type { TapEvent, TapSpec, TapWatch, TapReport, TapReportResponse } from '../api/tap.js';
import { now as clockNow } from '../util/clock.js';

export const REDACTED = ['authorization', 'cookie', 'set-cookie', 'proxy-authorization'];
const MAX_BATCH = 200;
const FLUSH_MS = 100;

interface Active {
  spec: TapSpec;
  redactExact: Set<string>;
  redactPrefix: string[];
  windowStart: number;
  sent: number;
}

export class Tap {
  /** The only thing a request checks when nobody taps. */
  on = false;
  private active: Active[] = [];
  private pending = new Map<string, TapEvent[]>();
  private timer: NodeJS.Timeout | undefined;
  private version = '';
  private stopped = false;
  private failures = 0;

  constructor(
    private readonly client: ControlClient,
    private readonly own: { identity: string; instance: string },
    private readonly log: (m: string) => void = () => {},
  ) {}

  /** Starts the long-poll for taps; the proxy must be registered for the control plane to answer. */
  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.set([]);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        const { status, body } = await this.client.request<TapWatch>(
          'GET', `/v1/tap/watch?instance=${encodeURIComponent(this.own.instance)}&since=${encodeURIComponent(this.version)}`, undefined, { timeoutMs: 30_000 });
        if (status === 200) {
          this.version = body.version;
          this.set(body.taps);
          this.failures = 0;
        } else if (status !== 204) throw new Error(`HTTP ${status}`);
      } catch {
        // Control plane away (or this proxy not registered yet): nobody can tap now, so stop any tap and retry later.
        this.set([]);
        this.failures++;
        // At most 4 s apart, as the config watch: a tap opened once the control plane is back reaches this proxy soon.
        await new Promise((r) => setTimeout(r, Math.min(4000, 500 * 2 ** Math.min(this.failures, 3))).unref());
      }
    }
  }

  private set(specs: TapSpec[]): void {
    this.active = specs.map((spec) => ({
      spec,
      redactExact: new Set([...REDACTED, ...spec.redact.filter((r) => !r.endsWith('*'))]),
      redactPrefix: spec.redact.filter((r) => r.endsWith('*')).map((r) => r.slice(0, -1)),
      windowStart: 0,
      sent: 0,
    }));
    this.on = this.active.length > 0;
  }

  /** Called for every exchange while `on`: picks the taps it matches, within their rate, and reports it when it ends. */
  watch(ex: Exchange, direction: 'inbound' | 'outbound', reason?: string): void {
    const now = clockNow();
    let taps: Active[] | undefined;
    for (const a of this.active) {
      const s = a.spec;
      if (s.method && ex.req.method !== s.method) continue;
      if (s.pathPrefix && !ex.path.startsWith(s.pathPrefix)) continue;
      if (s.authority && (ex.req.host ?? '') !== s.authority && ex.host !== s.authority) continue;
      if (s.to && direction !== 'outbound') continue;
      if (admit(a, now)) (taps ??= []).push(a);
    }
    if (!taps) return;
    let head = 0;
    let responseHeaders: string[] = [];
    const res = ex.res;
    const writeHead = res.writeHead;
    res.writeHead = function (status, reason, raw) {
      head = clockNow();
      responseHeaders = raw;
      return writeHead.call(this, status, reason, raw);
    };
    const requestHeaders = ex.req.rawHeaders;
    res.once('close', () => {
      const end = clockNow();
      const ep = ex.endpoint?.info;
      for (const a of taps) {
        const s = a.spec;
        if (s.to && !(ep && ep.namespace === s.to.namespace && (!s.to.service || ep.service === s.to.service)
          && (!s.to.deployment || `${ep.service}-${ep.version}` === s.to.deployment) && (!s.to.pod || ep.instance === s.to.pod))) continue;
        const ev: TapEvent = {
          direction, method: ex.req.method, authority: ex.req.host ?? ex.host, path: ex.path, status: res.statusCode,
          latencyUs: Math.round(((head || end) - ex.start) * 1000), durationUs: Math.round((end - ex.start) * 1000), bytes: res.bodyBytes,
          src: direction === 'inbound' ? ex.peer : this.own.identity,
          dst: direction === 'inbound' ? this.own.identity : ep?.identity ?? '',
          srcPod: direction === 'inbound' ? '' : this.own.instance,
          dstPod: direction === 'inbound' ? this.own.instance : ep?.instance ?? '',
          tls: direction === 'inbound' ? ex.peer !== '' : ep !== undefined,
          at: Date.now(),
        };
        // The proxy answered itself (a denial, a timeout): its stable code, and a denial's reason.
        if (ex.error !== null) ev.error = ex.error;
        if (reason !== undefined) ev.reason = reason;
        const grpc = find(responseHeaders, 'grpc-status');
        if (grpc !== undefined) ev.grpcStatus = grpc;
        if (s.headers) {
          ev.requestHeaders = redact(requestHeaders, a);
          ev.responseHeaders = redact(responseHeaders, a);
        }
        this.queue(s.id, ev);
      }
    });
  }

  /** A TCP connection refused before it reached the app (authorization): a CONNECT with no path, for taps that
   * select no path or destination. */
  refused(authority: string, peer: string, error: string, reason: string): void {
    const now = clockNow();
    for (const a of this.active) {
      const s = a.spec;
      if ((s.method && s.method !== 'CONNECT') || s.pathPrefix || s.to || (s.authority && s.authority !== authority) || !admit(a, now)) continue;
      this.queue(s.id, {
        direction: 'inbound', method: 'CONNECT', authority, path: '', status: 403, latencyUs: 0, durationUs: 0, bytes: 0,
        src: peer, dst: this.own.identity, srcPod: '', dstPod: this.own.instance, tls: peer !== '', at: Date.now(), error, reason,
      });
    }
  }

  private queue(id: string, ev: TapEvent): void {
    let list = this.pending.get(id);
    if (!list) this.pending.set(id, (list = []));
    if (list.length < MAX_BATCH * 5) list.push(ev);
    if (!this.timer) this.timer = setTimeout(() => void this.flush(), FLUSH_MS);
  }

  private async flush(): Promise<void> {
    const events: Record<string, TapEvent[]> = {};
    for (const [id, list] of this.pending) {
      events[id] = list.splice(0, MAX_BATCH);
      if (!list.length) this.pending.delete(id);
    }
    try {
      const { status, body } = await this.client.request<TapReportResponse>('POST', '/v1/tap/report', { instance: this.own.instance, events } satisfies TapReport, { timeoutMs: 5000 });
      if (status === 200) {
        // Taps that ended meanwhile stop here at once, not at the next watch answer.
        const live = new Set(body.active);
        if (this.active.some((a) => !live.has(a.spec.id))) this.set(this.active.filter((a) => live.has(a.spec.id)).map((a) => a.spec));
      } else this.log(`tap: the control plane refused a report (${status})`);
    } catch {
      // Best effort: events lost to a control-plane outage are not retried.
    }
    this.timer = this.pending.size > 0 && !this.stopped ? setTimeout(() => void this.flush(), FLUSH_MS) : undefined;
  }
}

/** Within the tap's --max-rps (a rolling second per proxy)? Counts the event if so. */
function admit(a: Active, now: number): boolean {
  if (now - a.windowStart >= 1000) {
    a.windowStart = now;
    a.sent = 0;
  }
  if (a.sent >= a.spec.maxRps) return false;
  a.sent++;
  return true;
}

function find(raw: string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) return raw[i + 1];
  return undefined;
}

function redact(raw: string[], a: Active): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!.toLowerCase();
    const secret = a.redactExact.has(n) || a.redactPrefix.some((p) => n.startsWith(p));
    out.push([raw[i]!, secret ? '[redacted]' : raw[i + 1]!]);
  }
  return out;
}
