// mesh dashboard --prometheus URL: the figures (stat, edges, authz, proxies' certificate expiry) computed with PromQL
// from that Prometheus, as mesh stat --prometheus does; config, tap and traces still come from the control plane.
import { PrometheusSource } from '../control/telemetry/prometheus.js';
import { computeStat, parseStatQuery } from '../control/telemetry/stat.js';
import { computeEdges, parseEdgesQuery } from '../control/telemetry/edges.js';
import { authzView, proxyCertificates } from '../control/view-routes.js';
import type { DashboardBackend } from './server.js';

/** Prometheus' default scrape interval, which mesh prometheus-config keeps unless told: the page's rate window follows it. */
const SCRAPE_MS = 10_000;

export function withPrometheus<B extends DashboardBackend>(b: B, url: string): B {
  const src = new PrometheusSource(url);
  const views: Record<string, (q: URLSearchParams) => Promise<unknown>> = {
    '/v1/stat': (q) => computeStat(src, parseStatQuery(q)),
    '/v1/edges': (q) => computeEdges(src, parseEdgesQuery(q)),
    '/v1/authz': async (q) => authzView(src, ((await b.get('/v1/config/policies')).body as { value?: unknown }).value ?? null, q),
    '/v1/identity/proxies': () => proxyCertificates(src),
    '/v1/telemetry/targets': async () => ({ intervalMs: SCRAPE_MS, source: src.name, targets: [] }),
  };
  return {
    ...b,
    async get(path: string) {
      const u = new URL(path, 'http://control');
      const view = views[u.pathname];
      if (!view) return b.get(path);
      try {
        return { status: 200, body: await view(u.searchParams) };
      } catch (err) {
        const e = err as Error & { status?: number; hint?: string };
        return { status: e.status ?? 502, body: { error: e.message, hint: e.hint } };
      }
    },
  };
}
