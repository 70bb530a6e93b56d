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
import type { Route } from '../router.js';
import { sendJson } from '../../util/http.js';


export interface TelemetryOptions {
  scrapeIntervalMs?: number;
  retentionMs?: number;
  log?: (msg: string) => void;
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

  /** Its part of the control plane's API: read-only views, guarded as the platform guards them. */
  routes(): Route[] {
    const reply = (compute: (q: URLSearchParams) => Promise<unknown> | unknown): Route['handle'] => async ({ res, url }) => {
      try {
        sendJson(res, 200, await compute(url.searchParams));
      } catch (err) {
        // A query the person asking got wrong (or a Prometheus that failed it): its status, one line and a hint.
        if (err instanceof MeshError) return sendJson(res, err.status, { error: err.message, hint: err.hint });
        throw err;
      }
    };
    return [
      { method: 'GET', path: '/v1/stat', who: 'reader', handle: reply((q) => computeStat(this.source, parseStatQuery(q))) },
      { method: 'GET', path: '/v1/edges', who: 'reader', handle: reply((q) => computeEdges(this.source, parseEdgesQuery(q))) },
      { method: 'GET', path: '/v1/telemetry/targets', who: 'reader', handle: reply(() => ({ intervalMs: this.intervalMs, retentionMs: this.store.retentionMs, targets: this.store.health() })) },
    ];
  }
}
