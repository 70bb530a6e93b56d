// Prometheus metrics as Linkerd names them. Label sets are built once per endpoint or peer, so a
// request only bumps numbers: no strings are made on the hot path.
import { ERROR_CODES, ERROR_INDEX, type ErrorCode } from './errors.js';

/** Response latency buckets in ms: fine below 10 ms, where loopback p50s live. */
export const LATENCY_BUCKETS_MS = [0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 2000, 3000, 5000, 10000, 30000, 60000];
const NB = LATENCY_BUCKETS_MS.length;

export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export function labelString(labels: Record<string, string>): string {
  return Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
}

function bucketOf(ms: number): number {
  let i = 0;
  while (i < NB && ms > LATENCY_BUCKETS_MS[i]!) i++;
  return i;
}

/** One authorization rule's decisions for a client, and the responses and latency of the requests it let in. */
export class RuleStats {
  allow = 0;
  deny = 0;
  ok = 0;
  failed = 0;
  readonly buckets = new Float64Array(NB + 1);
  latencySum = 0;

  observe(status: number, ms: number): void {
    this.head(ms);
    this.end(status < 500);
  }

  /** A response's time to first byte; a gRPC response's outcome comes later, with its grpc-status (end). */
  head(ms: number): void {
    this.buckets[bucketOf(ms)]!++;
    this.latencySum += ms;
  }

  end(ok: boolean): void {
    if (ok) this.ok++;
    else this.failed++;
  }
}

/** Request counts, status codes and time-to-first-byte for one label set. */
export class RequestStats {
  requests = 0;
  /** Responses by status code (100-599): an array, so counting is an index, not a map lookup. */
  readonly statusCounts = new Float64Array(600);
  /** Cumulative counts are derived at render time; observe only bumps one bucket. */
  readonly buckets = new Float64Array(NB + 1);
  latencySum = 0;
  /** Extra counters (retries, timeouts, ejections, authorization decisions) keyed by name. */
  readonly extra = new Map<string, number>();
  /** Authorization decisions by rule (AuthzDecision.rule), made on the first one; see allowed(). */
  authz: Map<string, RuleStats> | null = null;
  private authzRule: string | undefined;
  private authzLast: RuleStats | undefined;
  /** gRPC responses by HTTP status and grpc-status (status * 32 + grpc), made on the first gRPC response. */
  grpc: Map<number, number> | null = null;
  /** Responses the proxy made itself, by error code (indexed by ERROR_INDEX). */
  readonly errors = new Float64Array(ERROR_CODES.length);

  constructor(readonly labels: string) {}

  observe(status: number, ms: number): void {
    this.statusCounts[status >= 100 && status < 600 ? status : 599]!++;
    this.grpcHead(ms);
  }

  /** A gRPC response's head: counted as a request with its time to first byte, its outcome comes with grpcEnd. */
  grpcHead(ms: number): void {
    this.requests++;
    this.buckets[bucketOf(ms)]!++;
    this.latencySum += ms;
  }

  /** A gRPC response's outcome: its grpc-status (0-16; anything else is UNKNOWN, as gRPC reads it). */
  grpcEnd(status: number, grpcStatus: number): void {
    const key = (status >= 100 && status < 600 ? status : 599) * 32 + (grpcStatus >= 0 && grpcStatus <= 16 ? grpcStatus : 2);
    const m = (this.grpc ??= new Map());
    m.set(key, (m.get(key) ?? 0) + 1);
  }

  count(name: string, by = 1): void {
    this.extra.set(name, (this.extra.get(name) ?? 0) + by);
  }

  /** A response the proxy made itself (see errors.ts). */
  error(code: ErrorCode): void {
    this.errors[ERROR_INDEX[code]]!++;
  }

  /** Per-request authorization decisions by rule: a client mostly meets one rule, so the last one is kept at hand.
   * Returns the rule's stats, where the exchange records its response (Exchange.rule). */
  allowed(rule = 'unknown'): RuleStats | null {
    const r = rule === this.authzRule ? this.authzLast! : this.authzOf(rule);
    r.allow++;
    return r;
  }

  denied(rule = 'unknown'): void {
    (rule === this.authzRule ? this.authzLast! : this.authzOf(rule)).deny++;
  }

  /** Totals over every rule. */
  get authzAllow(): number {
    let n = 0;
    for (const c of this.authz?.values() ?? []) n += c.allow;
    return n;
  }

  get authzDeny(): number {
    let n = 0;
    for (const c of this.authz?.values() ?? []) n += c.deny;
    return n;
  }

  private authzOf(rule: string): RuleStats {
    const m = (this.authz ??= new Map());
    let c = m.get(rule);
    // Rules come from policy (bounded by what the control plane accepts); at most 64 per client are counted apart.
    if (!c && m.size >= 64) c = m.get('other') ?? m.set('other', new RuleStats()).get('other')!;
    if (!c) m.set(rule, (c = new RuleStats()));
    this.authzRule = rule;
    this.authzLast = c;
    return c;
  }
}

/** A connection as counted: a socket, or a tunnel stream carrying one (proxy/wire/mux-tunnel.ts). */
export interface Counted {
  readonly bytesRead: number;
  readonly bytesWritten: number;
  once(event: 'close', listener: () => void): unknown;
}

/** Connection counts and bytes for one label set; open sockets are summed at scrape time. */
export class TcpStats {
  opened = 0;
  closed = 0;
  closedRead = 0;
  closedWritten = 0;
  readonly open = new Set<Counted>();

  constructor(readonly labels: string) {}

  track(sock: Counted): void {
    this.opened++;
    this.open.add(sock);
    sock.once('close', () => {
      this.closed++;
      this.closedRead += sock.bytesRead;
      this.closedWritten += sock.bytesWritten;
      this.open.delete(sock);
    });
  }
}

/** Stats that record nothing: what the bench compares against to price the metrics. */
class NoopRequestStats extends RequestStats {
  override observe(): void {}
  override count(): void {}
  override allowed(): null {
    return null;
  }
  override denied(): void {}
  override error(): void {}
  override grpcHead(): void {}
  override grpcEnd(): void {}
}

export class MetricsRegistry {
  private readonly requestStats = new Map<string, RequestStats>();
  /** Off only for measuring what metrics cost (MESH_PROXY_METRICS=off). */
  private readonly enabled = process.env.MESH_PROXY_METRICS !== 'off';
  private readonly tcpStats = new Map<string, TcpStats>();
  private readonly gauges = new Map<string, () => number>();
  private readonly counters = new Map<string, { help: string; values: Map<string, number> }>();

  constructor(private readonly base: Record<string, string>) {}

  /** Stats for base labels plus `labels`; the same object for the same labels. */
  requests(labels: Record<string, string>): RequestStats {
    const key = labelString({ ...this.base, ...labels });
    let s = this.requestStats.get(key);
    if (!s) this.requestStats.set(key, (s = this.enabled ? new RequestStats(key) : new NoopRequestStats(key)));
    return s;
  }

  tcp(labels: Record<string, string>): TcpStats {
    const key = labelString({ ...this.base, ...labels });
    let s = this.tcpStats.get(key);
    if (!s) this.tcpStats.set(key, (s = new TcpStats(key)));
    return s;
  }

  gauge(name: string, fn: () => number): void {
    this.gauges.set(name, fn);
  }

  /** A counter with its own labels (authorization decisions and the like). */
  counter(name: string, help: string, labels: Record<string, string>): { inc(by?: number): void } {
    let c = this.counters.get(name);
    if (!c) this.counters.set(name, (c = { help, values: new Map() }));
    const key = labelString({ ...this.base, ...labels });
    const values = c.values;
    if (!values.has(key)) values.set(key, 0);
    return { inc: (by = 1) => values.set(key, values.get(key)! + by) };
  }

  render(): string {
    const out: string[] = [];
    // Only series that saw traffic, as Linkerd emits them.
    const reqs = [...this.requestStats.values()].filter((s) => s.requests > 0 || s.extra.size > 0 || s.authz !== null);
    out.push('# HELP request_total Total count of HTTP requests.', '# TYPE request_total counter');
    for (const s of reqs) out.push(`request_total{${s.labels}} ${s.requests}`);
    out.push('# HELP response_total Total count of HTTP responses.', '# TYPE response_total counter');
    for (const s of reqs) {
      for (let code = 100; code < 600; code++) {
        const n = s.statusCounts[code]!;
        if (n === 0) continue;
        const cls = code >= 500 ? 'failure' : 'success';
        out.push(`response_total{${s.labels},classification="${cls}",status_code="${code}"} ${n}`);
      }
      // As Linkerd classifies gRPC: by grpc-status, whatever the HTTP status (200 for all but broken servers).
      if (s.grpc !== null) {
        for (const [key, n] of s.grpc) {
          const g = key % 32;
          out.push(`response_total{${s.labels},classification="${g === 0 ? 'success' : 'failure'}",status_code="${(key - g) / 32}",grpc_status="${g}"} ${n}`);
        }
      }
    }
    out.push('# HELP response_latency_ms Time from a request being received to its response headers (time to first byte), in ms', '# TYPE response_latency_ms histogram');
    for (const s of reqs) {
      if (s.requests === 0) continue;
      let cum = 0;
      for (let i = 0; i < NB; i++) {
        cum += s.buckets[i]!;
        out.push(`response_latency_ms_bucket{${s.labels},le="${LATENCY_BUCKETS_MS[i]}"} ${cum}`);
      }
      cum += s.buckets[NB]!;
      out.push(`response_latency_ms_bucket{${s.labels},le="+Inf"} ${cum}`);
      out.push(`response_latency_ms_sum{${s.labels}} ${round(s.latencySum)}`);
      out.push(`response_latency_ms_count{${s.labels}} ${cum}`);
    }
    // Per authorization rule: the responses and latency of the requests each rule let in (mesh authz).
    const ruleLabels = (s: RequestStats, rule: string) => `${s.labels},rule="${escapeLabel(rule)}"`;
    const ruled = reqs.flatMap((s) => [...(s.authz ?? [])].filter(([, c]) => c.ok + c.failed > 0).map(([rule, c]) => ({ labels: ruleLabels(s, rule), c })));
    if (ruled.length) {
      out.push('# HELP inbound_http_authz_response_total Responses to requests an authorization rule allowed, by rule.', '# TYPE inbound_http_authz_response_total counter');
      for (const { labels, c } of ruled) {
        if (c.ok) out.push(`inbound_http_authz_response_total{${labels},classification="success"} ${c.ok}`);
        if (c.failed) out.push(`inbound_http_authz_response_total{${labels},classification="failure"} ${c.failed}`);
      }
      out.push('# HELP inbound_http_authz_response_latency_ms Time to first byte of requests an authorization rule allowed, by rule, in ms', '# TYPE inbound_http_authz_response_latency_ms histogram');
      for (const { labels, c } of ruled) {
        let cum = 0;
        for (let i = 0; i < NB; i++) out.push(`inbound_http_authz_response_latency_ms_bucket{${labels},le="${LATENCY_BUCKETS_MS[i]}"} ${(cum += c.buckets[i]!)}`);
        cum += c.buckets[NB]!;
        out.push(`inbound_http_authz_response_latency_ms_bucket{${labels},le="+Inf"} ${cum}`, `inbound_http_authz_response_latency_ms_sum{${labels}} ${round(c.latencySum)}`, `inbound_http_authz_response_latency_ms_count{${labels}} ${cum}`);
      }
    }
    const extras = new Map<string, string[]>();
    const extra = (name: string, s: RequestStats, n: number) => (extras.get(name) ?? extras.set(name, []).get(name)!).push(`${name}{${s.labels}} ${n}`);
    for (const s of reqs) {
      for (const [name, n] of s.extra) extra(name, s, n);
      for (const [rule, c] of s.authz ?? []) {
        const labels = ruleLabels(s, rule);
        for (const [name, n] of [['inbound_http_authz_allow_total', c.allow], ['inbound_http_authz_deny_total', c.deny]] as const) {
          if (n) (extras.get(name) ?? extras.set(name, []).get(name)!).push(`${name}{${labels}} ${n}`);
        }
      }
      // As linkerd2-proxy counts them: {inbound,outbound}_http_errors_total{error="<code>"}.
      const errors = s.labels.includes('direction="inbound"') ? 'inbound_http_errors_total' : 'outbound_http_errors_total';
      for (let i = 0; i < ERROR_CODES.length; i++) {
        if (s.errors[i]) (extras.get(errors) ?? extras.set(errors, []).get(errors)!).push(`${errors}{${s.labels},error="${ERROR_CODES[i]}"} ${s.errors[i]}`);
      }
    }
    for (const [name, lines] of extras) out.push(`# TYPE ${name} counter`, ...lines);
    const tcps = [...this.tcpStats.values()].filter((t) => t.opened > 0);
    const tcpLine = (name: string, type: string, help: string, value: (t: TcpStats) => number) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const t of tcps) out.push(`${name}{${t.labels}} ${value(t)}`);
    };
    tcpLine('tcp_open_total', 'counter', 'Total count of opened connections.', (t) => t.opened);
    tcpLine('tcp_close_total', 'counter', 'Total count of closed connections.', (t) => t.closed);
    tcpLine('tcp_open_connections', 'gauge', 'Number of currently-open connections.', (t) => t.open.size);
    tcpLine('tcp_read_bytes_total', 'counter', 'Total count of bytes read from peers.', (t) => t.closedRead + sum(t.open, (s) => s.bytesRead));
    tcpLine('tcp_write_bytes_total', 'counter', 'Total count of bytes written to peers.', (t) => t.closedWritten + sum(t.open, (s) => s.bytesWritten));
    for (const [name, c] of this.counters) {
      out.push(`# HELP ${name} ${c.help}`, `# TYPE ${name} counter`);
      for (const [labels, v] of c.values) out.push(`${name}{${labels}} ${v}`);
    }
    const base = labelString(this.base);
    for (const [name, fn] of this.gauges) out.push(`# TYPE ${name} gauge`, `${name}{${base}} ${fn()}`);
    return out.join('\n') + '\n';
  }
}

function sum(socks: Set<Counted>, f: (s: Counted) => number): number {
  let n = 0;
  for (const s of socks) n += f(s) || 0;
  return n;
}

const round = (n: number) => Math.round(n * 1000) / 1000;
