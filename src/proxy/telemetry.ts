// Access logs and tracing. Both are off the hot path unless switched on; the one thing done for
// every request is starting a W3C trace context when the request arrives without one.
import { randomFillSync } from 'node:crypto';
import type { Exchange } from './exchange.js';
import type { Tap } from './tap.js';
import { isoTime } from '../util/iso-time.js';
import { CONTROL_COLLECTOR } from '../model/snapshot.js';
import { Pool } from './wire/h1-client.js';
import { now as clockNow, timeOrigin } from '../util/clock.js';

export interface TelemetrySettings {
  accessLog: boolean;
  /** OTLP/HTTP JSON endpoint, e.g. http://127.0.0.1:4318/v1/traces. */
  collector: string | null;
  /**
   * Traces this proxy starts and records, at most, per second (the control plane's default collector); the rest go
   * on unsampled (flags 00), which every proxy then passes on without a span. Unset: every trace is recorded.
   */
  newTracesPerSecond?: number;
}

// Ids come from a pooled random buffer: one randomFill per 512 ids instead of one per request.
const pool = Buffer.alloc(4096);
let poolAt = pool.length;
function randomHex(bytes: number): string {
  if (poolAt + bytes > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const s = pool.toString('hex', poolAt, poolAt + bytes);
  poolAt += bytes;
  return s;
}

const TP_RE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

interface Span {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  start: number;
  end: number;
  attributes: Record<string, string | number>;
}

export class Telemetry {
  settings: TelemetrySettings;
  /** Live taps (mesh tap); null or off costs a request one check. */
  tap: Tap | null = null;
  /** Sends an export to the control plane's API (collector CONTROL_COLLECTOR); without it such spans are dropped. */
  toControl: ((body: unknown) => void) | null = null;
  private spans: Span[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly epochOffsetMs = timeOrigin;
  private sampleWindow = 0;
  private sampled = 0;

  constructor(
    readonly own: { identity: string; service: string; namespace: string; deployment: string; pod: string },
    initial: TelemetrySettings,
    private readonly write: (line: string) => void = (l) => process.stdout.write(l),
  ) {
    this.settings = initial;
  }

  /**
   * Makes sure the forwarded headers carry a trace context (from traceparent, else B3, else new);
   * with tracing on, this proxy's span becomes the parent for the next hop. Returns the trace id.
   */
  traceContext(ex: Exchange, kind: 'client' | 'server'): void {
    const h = ex.headers;
    let tpAt = -1;
    let b3Trace = '';
    let b3Span = '';
    for (let i = 0; i < h.length; i += 2) {
      const n = h[i]!;
      if (n.length === 11 && n.toLowerCase() === 'traceparent') tpAt = i + 1;
      else if (n.length === 12 && n.toLowerCase() === 'x-b3-traceid') b3Trace = h[i + 1]!;
      else if (n.length === 11 && n.toLowerCase() === 'x-b3-spanid') b3Span = h[i + 1]!;
    }
    let traceId: string;
    let parent = '';
    let flags = '01';
    const m = tpAt >= 0 ? TP_RE.exec(h[tpAt]!) : null;
    if (m) {
      traceId = m[1]!;
      parent = m[2]!;
      flags = m[3]!;
    } else if (/^[0-9a-f]{16}([0-9a-f]{16})?$/.test(b3Trace)) {
      traceId = b3Trace.padStart(32, '0');
      parent = /^[0-9a-f]{16}$/.test(b3Span) ? b3Span : '';
    } else {
      traceId = randomHex(16);
      const limit = this.settings.newTracesPerSecond;
      if (limit !== undefined && this.settings.collector !== null) {
        const now = clockNow();
        if (now - this.sampleWindow >= 1000) {
          this.sampleWindow = now;
          this.sampled = 0;
        }
        flags = this.sampled++ < limit ? '01' : '00';
      }
    }
    ex.traceId = traceId;
    // Not sampled upstream (the flags' low bit): passed on as it came, no span.
    const record = this.settings.collector !== null && (parseInt(flags, 16) & 1) === 1;
    if (!record && m) return;
    const spanId = record ? randomHex(8) : parent || randomHex(8);
    const value = `00-${traceId}-${spanId}-${flags}`;
    if (tpAt >= 0) h[tpAt] = value;
    else h.push('traceparent', value);
    if (record) {
      ex.span = { traceId, spanId, parentSpanId: m || parent ? parent : '', name: '', kind: kind === 'server' ? 2 : 3, start: 0, end: 0, attributes: {} };
    }
  }

  /** A request authorization refused (it never reaches observe): the tap still shows it, with the reason. */
  denied(ex: Exchange, reason: string): void {
    if (this.tap?.on) this.tap.watch(ex, 'inbound', reason);
  }

  /** A TCP connection authorization refused: the tap shows it as a CONNECT, with the reason. */
  connectionDenied(authority: string, peer: string, reason: string): void {
    if (this.tap?.on) this.tap.refused(authority, peer, 'denied', reason);
  }

  /** Called once per exchange when access logs or tracing are on. */
  watch(ex: Exchange, direction: 'inbound' | 'outbound'): void {
    if (this.tap?.on) this.tap.watch(ex, direction);
    if (!this.settings.accessLog && ex.span === null) return;
    ex.res.once('close', () => {
      const ms = clockNow() - ex.start;
      const status = ex.res.statusCode;
      const authority = ex.req.host ?? ex.host;
      const server = direction === 'inbound' ? this.own.identity : ex.endpoint?.info.identity ?? '';
      const client = direction === 'inbound' ? ex.peer : this.own.identity;
      if (this.settings.accessLog) {
        this.write(JSON.stringify({
          time: isoTime(), direction, method: ex.req.method, authority, path: ex.path, status,
          duration_ms: Math.round(ms * 1000) / 1000, bytes: ex.res.bodyBytes,
          client_id: client, server_id: server, trace_id: ex.traceId,
          ...(direction === 'outbound' && ex.endpoint ? { dst: ex.endpoint.info.instance } : {}),
          // The proxy answered itself: the stable code of why (errors.ts).
          ...(ex.error !== null ? { error: ex.error } : {}),
        }) + '\n');
      }
      const span = ex.span as Span | null;
      if (span) {
        span.name = `${direction} ${ex.req.method} ${direction === 'outbound' ? ex.target?.name ?? ex.host : this.own.service}`;
        span.start = this.epochOffsetMs + ex.start;
        span.end = span.start + ms;
        span.attributes = {
          'http.method': ex.req.method ?? '', 'http.target': ex.path, 'http.status_code': status,
          'net.peer.identity': direction === 'inbound' ? client : server, 'mesh.direction': direction,
        };
        this.push(span);
      }
    });
  }

  private push(span: Span): void {
    this.spans.push(span);
    if (this.spans.length >= 512) this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), 1000);
      this.timer.unref();
    }
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const spans = this.spans;
    this.spans = [];
    const url = this.settings.collector;
    if (!spans.length || !url) return;
    const nano = (ms: number) => (BigInt(Math.round(ms * 1000)) * 1000n).toString();
    const payload = {
      resourceSpans: [{
        resource: { attributes: [
          { key: 'service.name', value: { stringValue: this.own.service } },
          { key: 'k8s.namespace.name', value: { stringValue: this.own.namespace } },
          { key: 'k8s.deployment.name', value: { stringValue: this.own.deployment } },
          { key: 'k8s.pod.name', value: { stringValue: this.own.pod } },
        ] },
        scopeSpans: [{
          scope: { name: 'mesh-proxy' },
          spans: spans.map((s) => ({
            traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId, name: s.name, kind: s.kind,
            startTimeUnixNano: nano(s.start), endTimeUnixNano: nano(s.end),
            attributes: Object.entries(s.attributes).map(([key, v]) => ({ key, value: typeof v === 'number' ? { intValue: String(v) } : { stringValue: v } })),
            status: { code: Number(s.attributes['http.status_code']) >= 500 ? 2 : 0 },
          })),
        }],
      }],
    };
    if (url === CONTROL_COLLECTOR) return void this.toControl?.(payload);
    exportSpans(url, Buffer.from(JSON.stringify(payload)));
  }
}

/** One connection per export (a second apart at most), as the proxy's own HTTP/1.1 client. */
let exports: Pool | null = null;

/** Best effort: a collector that is down or slow costs these spans, never the request path. */
function exportSpans(url: string, body: Buffer): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return;
  }
  if (u.protocol !== 'http:') return;
  const port = u.port === '' ? 80 : Number(u.port);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const headers = ['host', u.host, 'content-type', 'application/json', 'content-length', String(body.length), 'connection', 'close'];
  const up = (exports ??= new Pool({ idleMs: 5_000, maxIdle: 0 })).request({ host, port, method: 'POST', path: u.pathname + u.search, headers });
  up.on('error', () => {});
  up.conn!.sock.setTimeout(5000, () => up.destroy());
  up.end(body);
}
