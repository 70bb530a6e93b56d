// Read-only views over the control plane's window for mesh authz and the dashboard: GET /v1/authz, and (in
// dashboard/routes.ts) the dashboard's own pages and data.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, sendJson } from '../util/http.js';
import { parseDuration } from '../util/duration.js';
import type { Registry } from '../control/registry.js';
import type { Telemetry } from '../control/telemetry/index.js';
import { computeAuthz } from './authz.js';
import type { TraceStore } from '../control/traces.js';

export interface ViewDeps {
  registry: Registry;
  telemetry?: Telemetry;
  traces?: TraceStore;
  /** Guards an admin-only call (or passes, where the platform guards the telemetry API itself). */
  reader(req: IncomingMessage): void;
}

export function viewRoutes(d: ViewDeps) {
  return async function handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    if (req.method !== 'GET') return false;
    if (url.pathname === '/v1/traces' || url.pathname.startsWith('/v1/traces/')) {
      d.reader(req);
      if (!d.traces) throw new HttpError(404, 'this control plane keeps no traces');
      if (url.pathname === '/v1/traces') return sendJson(res, 200, { traces: d.traces.list() }), true;
      const spans = d.traces.get(decodeURIComponent(url.pathname.slice('/v1/traces/'.length)));
      if (!spans) throw new HttpError(404, 'no such trace (the control plane keeps the most recent 500)');
      return sendJson(res, 200, { spans }), true;
    }
    if (url.pathname !== '/v1/authz') return false;
    d.reader(req);
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
      if (e.status) return sendJson(res, e.status, { error: e.message, hint: e.hint }), true;
      throw err;
    }
    return true;
  };
}
