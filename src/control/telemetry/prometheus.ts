// A real Prometheus as the source of `mesh stat --prometheus URL`: the same questions as PromQL,
// and the scrape config that makes Prometheus collect what these queries need.
import http from 'node:http';
import https from 'node:https';
import type { Labels } from './parse.js';
import { formatMs, targetLabels, type MetricSource, type PodInfo, type ScrapeTarget, type VectorSample } from './source.js';
import { MeshError } from '../../util/errors.js';

export const PROMETHEUS_JOB = 'mesh-proxy';

/** GETs a URL: status and body. (node:http rather than fetch, which refuses some ports.) */
export type HttpGet = (url: string, timeoutMs: number) => Promise<{ status: number; body: string }>;

export const httpGet: HttpGet = (url, timeoutMs) => new Promise((resolve, reject) => {
  const get = url.startsWith('https:') ? https.get : http.get;
  const req = get(url, { headers: { accept: 'application/json' }, agent: false }, (res) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    res.on('error', reject);
  });
  req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs / 1000} s`), { code: 'ETIMEDOUT' })));
  req.on('error', reject);
});

interface PromVectorResponse {
  status: 'success' | 'error';
  error?: string;
  data?: { resultType: string; result: { metric: Labels; value: [number, string] }[] };
}

export function selector(metric: string, match: Labels): string {
  const m = Object.entries(match).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return m.length ? `${metric}{${m.join(',')}}` : metric;
}

const range = (ms: number) => `[${Math.max(1, Math.round(ms / 1000))}s]`;
const byClause = (by: string[]) => `by (${by.join(', ')})`;

export class PrometheusSource implements MetricSource {
  readonly name: string;
  readonly maxWindowMs = Infinity;
  /** Every query is evaluated at the same instant, so the figures of one table agree. */
  private readonly at = Date.now() / 1000;
  private readonly base: string;

  constructor(url: string, private readonly get: HttpGet = httpGet, private readonly timeoutMs = 10_000) {
    let u: URL;
    try {
      u = new URL(url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
    } catch {
      throw new MeshError(`'${url}' is not a Prometheus URL`, 'pass --prometheus http://HOST:PORT');
    }
    this.base = u.href.replace(/\/+$/, '');
    this.name = `Prometheus at ${this.base}`;
  }

  /** Runs one instant query; a vector of samples, NaN values dropped. */
  async query(expr: string): Promise<VectorSample[]> {
    const url = `${this.base}/api/v1/query?${new URLSearchParams({ query: expr, time: this.at.toFixed(3) })}`;
    let res: { status: number; body: string };
    try {
      res = await this.get(url, this.timeoutMs);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'ETIMEDOUT' ? e.message : e.code ?? e.message;
      throw new MeshError(`cannot reach ${this.name} (${why})`, 'check the --prometheus URL and that Prometheus is running', { status: 502 });
    }
    let body: PromVectorResponse;
    try {
      body = JSON.parse(res.body) as PromVectorResponse;
    } catch {
      throw new MeshError(`${this.name} answered HTTP ${res.status} with something that is not its API`, 'point --prometheus at the Prometheus server itself, e.g. http://127.0.0.1:9090', { status: 502 });
    }
    if (body.status !== 'success' || !body.data) {
      throw new MeshError(`${this.name} refused the query: ${body.error ?? `HTTP ${res.status}`}`, 'check that the URL is a Prometheus 2.x server', { status: 502 });
    }
    if (body.data.resultType !== 'vector') return [];
    const out: VectorSample[] = [];
    for (const r of body.data.result) {
      const value = Number(r.value[1]);
      if (!Number.isNaN(value)) out.push({ labels: r.metric, value });
    }
    return out;
  }

  async pods(): Promise<PodInfo[]> {
    // The proxies Prometheus can scrape now, described by the target labels prometheus-config gives them.
    const up = await this.query('up{role=~"sidecar|ingress"} == 1');
    const seen = new Map<string, PodInfo>();
    for (const s of up) {
      const l = s.labels;
      if (!l.pod || !l.namespace) continue;
      seen.set(`${l.namespace}/${l.pod}`, {
        namespace: l.namespace, pod: l.pod, deployment: l.deployment ?? '', service: l.service ?? '',
        role: l.role === 'ingress' ? 'ingress' : 'sidecar', identity: l.identity ?? '',
      });
    }
    return [...seen.values()];
  }

  rate(metric: string, match: Labels, by: string[], windowMs: number): Promise<VectorSample[]> {
    return this.query(`sum(rate(${selector(metric, match)}${range(windowMs)})) ${byClause(by)}`);
  }

  quantile(q: number, histogram: string, match: Labels, by: string[], windowMs: number): Promise<VectorSample[]> {
    return this.query(`histogram_quantile(${q}, sum(rate(${selector(`${histogram}_bucket`, match)}${range(windowMs)})) ${byClause(['le', ...by])})`);
  }

  gauge(metric: string, match: Labels, by: string[]): Promise<VectorSample[]> {
    return this.query(`sum(${selector(metric, match)}) ${byClause(by)}`);
  }

  notice(): string | undefined {
    return undefined;
  }
}

/** file_sd targets: one group per proxy, with the labels stat and edges group by. */
export function fileSdTargets(targets: ScrapeTarget[]): { targets: string[]; labels: Labels }[] {
  return [...targets]
    .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.pod.localeCompare(b.pod))
    .map((t) => ({ targets: [t.admin], labels: targetLabels(t) }));
}

export interface PrometheusConfigOptions {
  scrapeIntervalMs: number;
  /** Point at a file_sd file instead of listing the targets inline. */
  fileSd?: string;
  generatedBy?: string;
}

const q = (s: string) => JSON.stringify(s);

/** The start of a scrape config for the proxies' job, up to its metrics path; both platforms add to it. */
export function scrapeConfigHead(comments: string[], scrapeIntervalMs: number): string[] {
  const interval = formatMs(scrapeIntervalMs);
  return [
    ...comments.map((c) => `# ${c}`),
    'global:',
    `  scrape_interval: ${interval}`,
    `  evaluation_interval: ${interval}`,
    'scrape_configs:',
    `  - job_name: ${PROMETHEUS_JOB}`,
    `    scrape_interval: ${interval}`,
    `    scrape_timeout: ${formatMs(Math.min(scrapeIntervalMs, 10_000))}`,
    '    metrics_path: /metrics',
  ];
}

/** A prometheus.yml that scrapes every proxy's /metrics; honor_labels keeps the proxies' own labels. */
export function renderPrometheusConfig(targets: ScrapeTarget[], o: PrometheusConfigOptions): string {
  const interval = formatMs(o.scrapeIntervalMs);
  const lines = [
    ...scrapeConfigHead([
      `Prometheus scrape config for the mesh's proxies${o.generatedBy ? ` (${o.generatedBy})` : ''}.`,
      'Each target carries namespace, deployment, pod, service, role and identity labels, which',
      "'mesh stat --prometheus' and 'mesh edges --prometheus' group by.",
    ], o.scrapeIntervalMs),
    '    honor_labels: true',
  ];
  if (o.fileSd) {
    lines.push('    file_sd_configs:', `      - files: [${q(o.fileSd)}]`, `        refresh_interval: ${interval}`);
  } else if (!targets.length) {
    lines.push('    static_configs: []');
  } else {
    lines.push('    static_configs:');
    for (const g of fileSdTargets(targets)) {
      lines.push(`      - targets: [${g.targets.map(q).join(', ')}]`, '        labels:');
      for (const [k, v] of Object.entries(g.labels)) lines.push(`          ${k}: ${q(v)}`);
    }
  }
  return lines.join('\n') + '\n';
}
