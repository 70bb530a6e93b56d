// Read-only views over the control plane's window for mesh authz and the dashboard: GET /v1/authz, and the traces
// its collector keeps (GET /v1/traces, /v1/traces/<id>); routes of the control plane's table (control/router.ts).
import { HttpError, sendJson } from '../util/http.js';
import { parseDuration } from '../util/duration.js';
import type { Registry } from '../control/registry.js';
import type { Route } from '../control/router.js';
import type { Telemetry } from '../control/telemetry/index.js';
import { computeAuthz } from './authz.js';
import type { TraceStore } from '../control/traces.js';

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
        const q = url.searchParams;
        let windowMs: number;
        try {
          windowMs = parseDuration(q.get('window') ?? '1m', 'window');
        } catch (err) {
          throw new HttpError(400, (err as Error).message);
        }
        try {
          sendJson(res, 200, await computeAuthz(d.telemetry.source, d.registry.getConfig('policies'), q.get('namespace') || 'default', q.get('deployment') ?? '', windowMs));
        } catch (err) {
          const e = err as Error & { status?: number; hint?: string };
          if (e.status) return sendJson(res, e.status, { error: e.message, hint: e.hint });
          throw err;
        }
      },
    },
  ];
}
