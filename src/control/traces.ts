// The control plane's own trace collector: an OTLP/HTTP JSON receiver on 127.0.0.1 (the sidecars export to it
// unless --trace-collector names another), keeping the most recent traces in memory, bounded.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody } from '../util/http.js';

export interface StoredSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  service: string;
  startMs: number;
  endMs: number;
  status: number;
  attributes: Record<string, string | number>;
}

export interface TraceSummary {
  traceId: string;
  root: string;
  startMs: number;
  durationMs: number;
  spans: number;
  services: string[];
  failed: boolean;
}

const MAX_TRACES = 500;
const MAX_SPANS = 128;

type AnyValue = { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean };
const val = (v: AnyValue | undefined): string | number => v?.stringValue ?? (v?.intValue !== undefined ? Number(v.intValue) : v?.doubleValue ?? String(v?.boolValue ?? ''));

export class TraceStore {
  /** Insertion order is age: the oldest trace goes first when the store is full. */
  private readonly traces = new Map<string, StoredSpan[]>();

  /** Takes an OTLP/HTTP JSON ExportTraceServiceRequest. */
  add(body: unknown): number {
    let n = 0;
    const rs = (body as { resourceSpans?: unknown[] })?.resourceSpans;
    if (!Array.isArray(rs)) return 0;
    for (const r of rs as { resource?: { attributes?: { key: string; value: AnyValue }[] }; scopeSpans?: { spans?: Record<string, unknown>[] }[] }[]) {
      const service = String(val(r.resource?.attributes?.find((a) => a.key === 'service.name')?.value) || 'unknown');
      for (const ss of r.scopeSpans ?? []) for (const s of ss.spans ?? []) {
        if (typeof s.traceId !== 'string' || typeof s.spanId !== 'string') continue;
        const attributes: Record<string, string | number> = {};
        for (const a of (s.attributes as { key: string; value: AnyValue }[] | undefined) ?? []) attributes[a.key] = val(a.value);
        let list = this.traces.get(s.traceId);
        if (!list) {
          if (this.traces.size >= MAX_TRACES) this.traces.delete(this.traces.keys().next().value!);
          this.traces.set(s.traceId, (list = []));
        }
        if (list.length >= MAX_SPANS) continue;
        list.push({
          traceId: s.traceId, spanId: s.spanId, parentSpanId: String(s.parentSpanId ?? ''), name: String(s.name ?? ''), service,
          startMs: Number(BigInt(String(s.startTimeUnixNano ?? 0)) / 1000n) / 1000, endMs: Number(BigInt(String(s.endTimeUnixNano ?? 0)) / 1000n) / 1000,
          status: Number((s.status as { code?: number } | undefined)?.code ?? 0), attributes,
        });
        n++;
      }
    }
    return n;
  }

  /**
   * Recent traces, failing and slowest first, each naming its services in the order they joined it: from the newer half of the store only, so a listed trace is still kept
   * when someone opens it (opening it keeps it longer still).
   */
  list(limit = 100): TraceSummary[] {
    const out: TraceSummary[] = [];
    let skip = this.traces.size - MAX_TRACES / 2;
    for (const [traceId, spans] of this.traces) {
      if (skip-- > 0) continue;
      const start = Math.min(...spans.map((s) => s.startMs));
      const end = Math.max(...spans.map((s) => s.endMs));
      const root = spans.find((s) => !spans.some((p) => p.spanId === s.parentSpanId)) ?? spans[0]!;
      out.push({ traceId, root: `${root.service}: ${root.name}`, startMs: start, durationMs: end - start, spans: spans.length,
        services: [...new Set(spans.slice().sort((a, b) => a.startMs - b.startMs).map((s) => s.service))], failed: spans.some((s) => s.status === 2) });
    }
    return out.sort((a, b) => Number(b.failed) - Number(a.failed) || b.durationMs - a.durationMs).slice(0, limit);
  }

  /** One trace's spans by start; a trace someone looks at moves to the newest end (evicted last). */
  get(traceId: string): StoredSpan[] | undefined {
    const spans = this.traces.get(traceId);
    if (!spans) return undefined;
    this.traces.delete(traceId);
    this.traces.set(traceId, spans);
    return spans.slice().sort((a, b) => a.startMs - b.startMs);
  }
}

/** The OTLP/HTTP receiver (POST /v1/traces, JSON) on 127.0.0.1; resolves with its URL. */
export async function startTraceReceiver(store: TraceStore, port = 0): Promise<{ url: string; server: http.Server }> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/v1/traces') return void res.writeHead(404).end();
    readBody(req, 4 * 1024 * 1024).then((b) => {
      try {
        store.add(JSON.parse(b.toString('utf8')));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } catch {
        res.writeHead(400).end();
      }
    }, () => res.writeHead(413).end());
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, server };
}
