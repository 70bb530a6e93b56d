// Where stat and edges get their figures: the control plane's own scrapes, or a Prometheus. Both
// answer the same few PromQL-shaped questions, so the maths on top is shared.
import type { EndpointRecord } from '../../api/types.js';
import type { Labels } from './parse.js';
import { histogramQuantile } from './quantile.js';
import type { MetricStore, VectorSample } from './store.js';

export type { VectorSample };

/** A meshed pod, as the platform (or Prometheus's target labels) describes it. */
export interface PodInfo {
  namespace: string;
  pod: string;
  /** The workload group: service-version, or the ingress's service name. */
  deployment: string;
  service: string;
  role: 'sidecar' | 'ingress';
  identity: string;
  /** False for a pod without a proxy (counted in MESHED, never scraped); absent means meshed. */
  meshed?: boolean;
  /** The mesh's control plane: marked as such, not counted as an unmeshed workload. */
  controlPlane?: boolean;
}

export interface MetricSource {
  /** Named in messages: "the control plane", "Prometheus at http://…". */
  readonly name: string;
  /** The longest window this source can answer. */
  readonly maxWindowMs: number;
  pods(): Promise<PodInfo[]>;
  /** sum by (by) (rate(metric{match}[window])) */
  rate(metric: string, match: Labels, by: string[], windowMs: number): Promise<VectorSample[]>;
  /** histogram_quantile(q, sum by (le, by) (rate(histogram_bucket{match}[window]))) */
  quantile(q: number, histogram: string, match: Labels, by: string[], windowMs: number): Promise<VectorSample[]>;
  /** sum by (by) (metric{match}), now. */
  gauge(metric: string, match: Labels, by: string[]): Promise<VectorSample[]>;
  /** Why figures may be partial for this window (too few scrapes yet), if they are. */
  notice(windowMs: number): string | undefined;
}

/** How the workload group ("deployment") is named: service-version, or the ingress's service. */
export function podInfo(ep: EndpointRecord): PodInfo {
  const role = ep.role === 'ingress' ? 'ingress' : 'sidecar';
  return {
    namespace: ep.namespace,
    pod: ep.instance,
    deployment: ep.workload ?? (role === 'ingress' ? ep.service : `${ep.service}-${ep.version}`),
    service: ep.service,
    role,
    identity: ep.identity,
    ...(ep.meshed === false ? { meshed: false } : {}),
    ...(ep.controlPlane ? { controlPlane: true } : {}),
  };
}

/** A proxy to scrape: its pod, and its admin listener (host:port) serving /metrics. */
export interface ScrapeTarget extends PodInfo {
  admin: string;
}

/** The labels a proxy's scrape target carries, from its registration. */
export function targetLabels(p: PodInfo): Labels {
  return { namespace: p.namespace, deployment: p.deployment, pod: p.pod, service: p.service, role: p.role, identity: p.identity };
}

/** The quantile of each group from bucket rates grouped by (by, le). */
export function quantilesFromBuckets(q: number, buckets: VectorSample[], by: string[]): VectorSample[] {
  const groups = new Map<string, { labels: Labels; buckets: { le: number; count: number }[] }>();
  for (const b of buckets) {
    const key = by.map((l) => b.labels[l] ?? '').join('\u0000');
    let g = groups.get(key);
    if (!g) {
      const labels: Labels = {};
      for (const l of by) labels[l] = b.labels[l] ?? '';
      groups.set(key, (g = { labels, buckets: [] }));
    }
    const le = Number(b.labels.le === '+Inf' ? Infinity : b.labels.le);
    if (!Number.isNaN(le)) g.buckets.push({ le, count: b.value });
  }
  const out: VectorSample[] = [];
  for (const g of groups.values()) {
    const v = histogramQuantile(q, g.buckets);
    if (!Number.isNaN(v)) out.push({ labels: g.labels, value: v });
  }
  return out;
}

/** The control plane's rolling window as a source. */
export class LocalSource implements MetricSource {
  readonly name = 'the control plane';

  constructor(
    private readonly store: MetricStore,
    private readonly listPods: () => PodInfo[],
    private readonly intervalMs: number,
  ) {}

  get maxWindowMs(): number {
    return this.store.retentionMs;
  }

  async pods(): Promise<PodInfo[]> {
    return this.listPods();
  }

  async rate(metric: string, match: Labels, by: string[], windowMs: number): Promise<VectorSample[]> {
    return this.store.rate(metric, match, by, windowMs);
  }

  async quantile(q: number, histogram: string, match: Labels, by: string[], windowMs: number): Promise<VectorSample[]> {
    return quantilesFromBuckets(q, this.store.rate(`${histogram}_bucket`, match, [...by, 'le'], windowMs), by);
  }

  async gauge(metric: string, match: Labels, by: string[]): Promise<VectorSample[]> {
    return this.store.gauge(metric, match, by);
  }

  notice(windowMs: number): string | undefined {
    const every = formatMs(this.intervalMs);
    if (this.store.rounds < 2) return `no metrics yet: the control plane scrapes the proxies every ${every}; try again in a moment`;
    const span = this.store.span(windowMs);
    if (span < windowMs) return `the control plane has scraped for ${formatMs(span)} of the ${formatMs(windowMs)} window: rates are over the whole window, so they read low until it fills`;
    return undefined;
  }
}

export function formatMs(ms: number): string {
  if (ms % 60_000 === 0 && ms >= 60_000) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(1)}s`;
  return `${Math.round(ms)}ms`;
}
