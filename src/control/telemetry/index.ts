// The control plane's telemetry: a scraper feeding a rolling window, and the stat and edges
// queries over it, served on the admin API (GET /v1/stat, GET /v1/edges, GET /v1/telemetry/targets).
import type { EndpointRecord } from '../../api/types.js';
import { Scraper } from './scraper.js';
import { DEFAULT_RETENTION_MS, MetricStore } from './store.js';
import { LocalSource, podInfo } from './source.js';

import { computeStat, parseStatQuery } from './stat.js';
import { MeshError } from '../../util/errors.js';
import { computeEdges, parseEdgesQuery } from './edges.js';
import { DEFAULT_SCRAPE_INTERVAL_MS } from './config.js';


export interface TelemetryOptions {
  scrapeIntervalMs?: number;
  retentionMs?: number;
  log?: (msg: string) => void;
}

export interface ApiReply {
  status: number;
  body: unknown;
}

export class Telemetry {
  readonly store: MetricStore;
  readonly scraper: Scraper;
  readonly source: LocalSource;
  readonly intervalMs: number;

  constructor(registry: { list(): EndpointRecord[] }, o: TelemetryOptions = {}) {
    this.intervalMs = o.scrapeIntervalMs ?? DEFAULT_SCRAPE_INTERVAL_MS;
    this.store = new MetricStore(Math.max(o.retentionMs ?? DEFAULT_RETENTION_MS, 2 * this.intervalMs));
    const pods = () => registry.list().map((ep) => ({ ...podInfo(ep), admin: ep.admin ?? '' }));
    this.scraper = new Scraper(pods, this.store, { intervalMs: this.intervalMs, log: o.log });
    this.source = new LocalSource(this.store, pods, this.intervalMs);
  }

  start(): void {
    this.scraper.start();
  }

  close(): Promise<void> {
    return this.scraper.stop();
  }

  /** The admin API routes this module answers. */
  handles(method: string | undefined, path: string): boolean {
    return method === 'GET' && (path === '/v1/stat' || path === '/v1/edges' || path === '/v1/telemetry/targets');
  }

  async handle(url: URL): Promise<ApiReply> {
    try {
      if (url.pathname === '/v1/stat') return { status: 200, body: await computeStat(this.source, parseStatQuery(url.searchParams)) };
      if (url.pathname === '/v1/edges') return { status: 200, body: await computeEdges(this.source, parseEdgesQuery(url.searchParams)) };
      return { status: 200, body: { intervalMs: this.intervalMs, retentionMs: this.store.retentionMs, targets: this.store.health() } };
    } catch (err) {
      // A query the person asking got wrong (or a Prometheus that failed it): its status, one line and a hint.
      if (err instanceof MeshError) return { status: err.status, body: { error: err.message, hint: err.hint } };
      throw err;
    }
  }
}
