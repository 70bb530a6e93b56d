// The tap API on the control plane: GET /v1/tap (admin: open a tap, or poll one with id=), DELETE /v1/tap/<id>
// (admin), and the proxies' side, GET /v1/tap/watch and POST /v1/tap/report (mesh certificate of that proxy).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { formatIdentity, type Identity } from '../identity/spiffe.js';
import { HttpError, readBody, sendJson } from '../util/http.js';
import type { EndpointRecord } from '../api/types.js';
import type { TapHub } from './tap.js';
import type { TapReport } from '../api/tap.js';

export interface RouteGuards {
  admin(req: IncomingMessage): void;
  peer(req: IncomingMessage): Identity;
}

const POLL_MS = 5000;
const WATCH_MS = 20_000;

export function tapRoutes(hub: TapHub, endpoints: () => EndpointRecord[], guard: RouteGuards) {
  /** The proxy that calls must be the instance it names. */
  const proxyOf = (req: IncomingMessage, instance: string): void => {
    const id = formatIdentity(guard.peer(req));
    const ep = endpoints().find((e) => e.instance === instance);
    if (!ep) throw new HttpError(404, `${instance} is not registered`);
    if (ep.identity !== id) throw new HttpError(403, `${instance} belongs to another identity`);
  };

  return async function handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const p = url.pathname;
    if (p !== '/v1/tap' && !p.startsWith('/v1/tap/')) return false;
    const q = url.searchParams;
    if (req.method === 'GET' && p === '/v1/tap') {
      guard.admin(req);
      const id = q.get('id');
      if (!id) sendJson(res, 200, hub.open(q));
      else sendJson(res, 200, await hub.poll(id, Number(q.get('after') ?? 0) || 0, Math.min(POLL_MS, Number(q.get('waitMs') ?? POLL_MS) || 0)));
    } else if (req.method === 'DELETE' && p.startsWith('/v1/tap/')) {
      guard.admin(req);
      sendJson(res, 200, { closed: hub.end(decodeURIComponent(p.slice('/v1/tap/'.length))) });
    } else if (req.method === 'GET' && p === '/v1/tap/watch') {
      const instance = q.get('instance') ?? '';
      proxyOf(req, instance);
      const r = await hub.watch(instance, q.get('since') ?? '', WATCH_MS);
      if (res.destroyed) return true;
      if (r) sendJson(res, 200, r);
      else res.writeHead(204).end();
    } else if (req.method === 'POST' && p === '/v1/tap/report') {
      let body: Partial<TapReport>;
      try {
        body = JSON.parse((await readBody(req, 4 * 1024 * 1024)).toString('utf8'));
      } catch (err) {
        throw err instanceof HttpError ? err : new HttpError(400, 'request body is not valid JSON');
      }
      proxyOf(req, String(body.instance ?? ''));
      sendJson(res, 200, { active: hub.report(String(body.instance), body.events ?? {}) });
    } else throw new HttpError(404, `no such API: ${req.method} ${p}`);
    return true;
  };
}
