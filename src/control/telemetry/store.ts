// The control plane's rolling window of scraped proxy metrics (15 minutes by default): enough to
// answer `mesh stat` without a Prometheus. Series are kept per scrape target; each target's own
// labels (namespace, deployment, pod, service, role, identity) are merged into its series' labels,
// as Prometheus does with target labels under honor_labels.
import { isCounter, type Exposition, type Labels } from './parse.js';
import { increase } from './rate.js';

export const DEFAULT_RETENTION_MS = 15 * 60_000;

export interface VectorSample {
  labels: Labels;
  value: number;
}

interface Series {
  name: string;
  /** The series' labels with the target's labels merged in. */
  labels: Labels;
  t: number[];
  v: number[];
}

interface Target {
  meta: Labels;
  series: Map<string, Series>;
  /** Time of the last successful scrape, -1 before the first. */
  lastT: number;
  /** The round of the last successful scrape. */
  lastRound: number;
  lastError?: string;
}

export interface TargetHealth {
  key: string;
  labels: Labels;
  lastScrape?: number;
  lastError?: string;
}

/** The proxy's start (ms) from its process_start_time_seconds, when it lies inside retention before t; else -1. */
function startedAt(exp: Exposition, t: number, retentionMs: number): number {
  for (const s of exp.samples) {
    if (s.name !== 'process_start_time_seconds') continue;
    const ms = s.value * 1000;
    return ms < t && t - ms <= retentionMs ? ms : -1;
  }
  return -1;
}

export class MetricStore {
  private readonly targets = new Map<string, Target>();
  private round = 0;
  /** Time of the first and the latest completed scrape round. */
  private first?: number;
  private last?: number;

  constructor(readonly retentionMs = DEFAULT_RETENTION_MS) {}

  /** The time the latest figures are as of: windows end here. */
  get latest(): number | undefined {
    return this.last;
  }

  get earliest(): number | undefined {
    return this.first;
  }

  get rounds(): number {
    return this.round;
  }

  /** Adds one target's scrape taken at time t (ms). */
  ingest(key: string, meta: Labels, exp: Exposition, t: number): void {
    let target = this.targets.get(key);
    if (!target) this.targets.set(key, (target = { meta, series: new Map(), lastT: -1, lastRound: -1 }));
    target.meta = meta;
    // A counter is zero when its proxy starts: before a target's first scrape that is the earlier point to grow
    // from, so the requests a new workload served before the control plane first reached it count too.
    const prevT = target.lastT >= 0 ? target.lastT : startedAt(exp, t, this.retentionMs);
    for (const s of exp.samples) {
      const id = seriesId(s.name, s.labels);
      let series = target.series.get(id);
      if (!series) {
        series = { name: s.name, labels: { ...meta, ...s.labels }, t: [], v: [] };
        target.series.set(id, series);
        // Proxies only expose a series once it has counted something: a counter that appears
        // between two scrapes of the same target (or since the proxy started) was zero at the earlier one.
        if (prevT >= 0 && isCounter(s.name, exp.types)) {
          series.t.push(prevT);
          series.v.push(0);
        }
      }
      const n = series.t.length;
      if (n && series.t[n - 1]! >= t) continue; // out of order: keep the series ascending
      series.t.push(t);
      series.v.push(s.value);
    }
    target.lastT = t;
    target.lastRound = this.round + 1;
    target.lastError = undefined;
  }

  fail(key: string, meta: Labels, error: string): void {
    let target = this.targets.get(key);
    if (!target) this.targets.set(key, (target = { meta, series: new Map(), lastT: -1, lastRound: -1 }));
    target.lastError = error;
  }

  /** Closes a scrape round at time t: the new end of every window; drops what fell out of retention. */
  completeRound(t: number): void {
    this.round++;
    this.first ??= t;
    this.last = t;
    this.prune(t - this.retentionMs);
  }

  health(): TargetHealth[] {
    return [...this.targets].map(([key, tg]) => ({ key, labels: tg.meta, lastScrape: tg.lastT >= 0 ? tg.lastT : undefined, lastError: tg.lastError }));
  }

  /** The covered part of a window ending at the latest round, in ms (0 before two rounds). */
  span(windowMs: number): number {
    if (this.first === undefined || this.last === undefined) return 0;
    return Math.min(windowMs, this.last - this.first);
  }

  /**
   * sum by (by) (rate(metric{match}[window])), per second: the growth in the window over the
   * window's length, as Prometheus divides, even while the store holds less than the window.
   */
  rate(metric: string, match: Labels, by: string[], windowMs: number): VectorSample[] {
    if (this.span(windowMs) <= 0) return [];
    const end = this.last!;
    const start = end - windowMs;
    const out = new Map<string, VectorSample>();
    for (const target of this.targets.values()) {
      if (target.lastT >= 0 && target.lastT <= start) continue; // nothing new in the window
      for (const s of target.series.values()) {
        if (s.name !== metric || !matches(s.labels, match)) continue;
        add(out, s.labels, by, increase(s, start, end) / (windowMs / 1000));
      }
    }
    return [...out.values()];
  }

  /** sum by (by) (metric{match}) over targets scraped in the latest round (or the one before). */
  gauge(metric: string, match: Labels, by: string[]): VectorSample[] {
    const out = new Map<string, VectorSample>();
    for (const target of this.targets.values()) {
      if (target.lastRound < this.round - 1 || target.lastRound < 0) continue;
      for (const s of target.series.values()) {
        if (s.name !== metric || !matches(s.labels, match)) continue;
        const n = s.t.length;
        if (n && s.t[n - 1] === target.lastT) add(out, s.labels, by, s.v[n - 1]!);
      }
    }
    return [...out.values()];
  }

  private prune(cutoff: number): void {
    for (const [key, target] of this.targets) {
      if (target.lastT < cutoff) {
        this.targets.delete(key);
        continue;
      }
      for (const [id, s] of target.series) {
        // Keep one sample before the cutoff: a window starting there interpolates from it.
        let i = 0;
        while (i + 1 < s.t.length && s.t[i + 1]! <= cutoff) i++;
        if (i > 0) {
          s.t.splice(0, i);
          s.v.splice(0, i);
        }
        if (s.t[s.t.length - 1]! < cutoff) target.series.delete(id);
      }
    }
  }
}

export function matches(labels: Labels, match: Labels): boolean {
  for (const k in match) if ((labels[k] ?? '') !== match[k]) return false;
  return true;
}

function add(out: Map<string, VectorSample>, labels: Labels, by: string[], value: number): void {
  const key = by.map((l) => labels[l] ?? '').join('\u0000');
  const cur = out.get(key);
  if (cur) cur.value += value;
  else {
    const picked: Labels = {};
    for (const l of by) picked[l] = labels[l] ?? '';
    out.set(key, { labels: picked, value });
  }
}

function seriesId(name: string, labels: Labels): string {
  let id = name;
  for (const k of Object.keys(labels).sort()) id += `\u0000${k}\u0001${labels[k]}`;
  return id;
}
