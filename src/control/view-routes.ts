// Read-only views over the control plane's window for mesh authz and the dashboard: GET /v1/authz, each proxy's
// certificate expiry (GET /v1/identity/proxies), and the traces its collector keeps (GET /v1/traces, /v1/traces/<id>); routes of the control plane's table (control/router.ts).
import { HttpError, sendJson } from '../util/http.js';
import { parseDuration } from '../util/duration.js';
import type { Registry } from './registry.js';
import type { Route } from './router.js';
import type { Telemetry } from './telemetry/index.js';
import { computeAuthz } from './telemetry/authz.js';
import type { AuthzResult } from '../api/telemetry.js';
import type { MetricSource } from './telemetry/source.js';
import type { TraceStore } from './traces.js';

export interface ViewDeps {
  registry: Registry;
  telemetry?: Telemetry;
  traces?: TraceStore;
}

export function viewRoutes(d: ViewDeps): Route[] {
  const traces = (): TraceStore => {
    if (!d.traces) throw new HttpError(404, 'this control plane keeps no traces');
    return d.traces;
  };
  return [
    { method: 'GET', path: '/v1/traces', who: 'reader', handle: ({ res }) => sendJson(res, 200, { traces: traces().list() }) },
    {
      method: 'GET', path: '/v1/traces/', prefix: true, who: 'reader', handle({ res, rest }) {
        const spans = traces().get(rest);
        if (!spans) throw new HttpError(404, 'no such trace (the control plane keeps the most recent 500)');
        sendJson(res, 200, { spans });
      },
    },
    {
      method: 'GET', path: '/v1/authz', who: 'reader', async handle({ res, url }) {
        if (!d.telemetry) throw new HttpError(404, 'this control plane keeps no telemetry');
        try {
          sendJson(res, 200, await authzView(d.telemetry.source, d.registry.getConfig('policies'), url.searchParams));
        } catch (err) {
          const e = err as Error & { status?: number; hint?: string };
          if (e.status) return sendJson(res, e.status, { error: e.message, hint: e.hint });
          throw err;
        }
      },
    },
    {
      method: 'GET', path: '/v1/identity/proxies', who: 'reader', async handle({ res }) {
        if (!d.telemetry) throw new HttpError(404, 'this control plane keeps no telemetry');
        sendJson(res, 200, await proxyCertificates(d.telemetry.source));
      },
    },
  ];
}

/** GET /v1/authz's answer from a metric source (the control plane's window, or Prometheus for the dashboard). */
export async function authzView(src: MetricSource, policies: unknown, q: URLSearchParams): Promise<AuthzResult> {
  let windowMs: number;
  try {
    windowMs = parseDuration(q.get('window') ?? '1m', 'window');
  } catch (err) {
    throw Object.assign(new Error((err as Error).message), { status: 400 });
  }
  return computeAuthz(src, policies, q.get('namespace') || 'default', q.get('deployment') ?? '', windowMs);
}

/** Each proxy's certificate expiry (ms since the epoch) by pod, from the gauge every proxy exports. */
export async function proxyCertificates(src: MetricSource): Promise<{ expiry: Record<string, number> }> {
  const expiry: Record<string, number> = {};
  for (const s of await src.gauge('identity_cert_expiration_timestamp_seconds', {}, ['pod'])) {
    if (s.labels.pod && s.value > 0) expiry[s.labels.pod] = s.value * 1000;
  }
  return { expiry };
}
