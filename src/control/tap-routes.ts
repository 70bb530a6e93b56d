// The tap API on the control plane: GET /v1/tap (open a tap, or poll one with id=) and DELETE /v1/tap/<id>, for the
// admin or a platform user RBAC lets tap the resource (tap-access.ts), and the proxies' side, GET /v1/tap/watch and
// POST /v1/tap/report (mesh certificate of that proxy).
import { formatIdentity, type Identity } from '../identity/spiffe.js';
import { HttpError, readBody, sendJson } from '../util/http.js';
import type { EndpointRecord } from '../api/types.js';
import type { TapReport } from '../api/tap.js';
import { TapHub } from './tap.js';
import type { TapAccess } from './tap-access.js';
import type { Route } from './router.js';

const POLL_MS = 5000;
const WATCH_MS = 20_000;

export function tapRoutes(hub: TapHub, endpoints: () => EndpointRecord[], access?: TapAccess): Route[] {
  /** The proxy that calls must be the instance it names. */
  const proxyOf = (peer: Identity, instance: string): void => {
    const ep = endpoints().find((e) => e.instance === instance);
    if (!ep) throw new HttpError(404, `${instance} is not registered`);
    if (ep.identity !== formatIdentity(peer)) throw new HttpError(403, `${instance} belongs to another identity`);
  };

  return [
    {
      method: 'GET', path: '/v1/tap', who: 'tapper', async handle({ res, url, tapper }) {
        const q = url.searchParams;
        const id = q.get('id');
        if (id) return sendJson(res, 200, await hub.poll(id, Number(q.get('after') ?? 0) || 0, Math.min(POLL_MS, Number(q.get('waitMs') ?? POLL_MS) || 0), tapper!.name));
        if (!tapper!.admin) {
          const target = TapHub.target(q);
          const r = access ? await access.authorize(tapper!, target) : { allowed: false };
          if (!r.allowed) throw new HttpError(403, `${tapper!.name} may not tap ${target.kind}/${target.name} in namespace ${target.namespace}${r.reason ? `: ${r.reason}` : ''}`);
        }
        sendJson(res, 200, hub.open(q, tapper!.name));
      },
    },
    { method: 'DELETE', path: '/v1/tap/', prefix: true, who: 'tapper', handle: ({ res, rest, tapper }) => sendJson(res, 200, { closed: hub.end(rest, tapper!.name) }) },
    {
      method: 'GET', path: '/v1/tap/watch', who: 'proxy', async handle({ res, url, peer }) {
        const q = url.searchParams;
        const instance = q.get('instance') ?? '';
        proxyOf(peer!, instance);
        const r = await hub.watch(instance, q.get('since') ?? '', WATCH_MS);
        if (res.destroyed) return;
        if (r) sendJson(res, 200, r);
        else res.writeHead(204).end();
      },
    },
    {
      method: 'POST', path: '/v1/tap/report', who: 'proxy', async handle({ req, res, peer }) {
        let body: Partial<TapReport>;
        try {
          body = JSON.parse((await readBody(req, 4 * 1024 * 1024)).toString('utf8'));
        } catch (err) {
          throw err instanceof HttpError ? err : new HttpError(400, 'request body is not valid JSON');
        }
        proxyOf(peer!, String(body.instance ?? ''));
        sendJson(res, 200, { active: hub.report(String(body.instance), body.events ?? {}) });
      },
    },
  ];
}
