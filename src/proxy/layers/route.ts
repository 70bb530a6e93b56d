// Picks the service a request is for from its authority, then the route rule that matches it and a
// version subset by weight. The table is rebuilt on config changes; requests only look it up.
import { ProxyError, respondError, type Handler, type Layer } from '../exchange.js';
import { pickBackend, type ServiceRouter } from '../routing.js';

export interface RouteTable {
  /** Every accepted spelling of every service name → its router. */
  hosts: Map<string, ServiceRouter>;
  /** Where requests for names that are not in the mesh go (the ingress's default service). */
  fallback: ServiceRouter | null;
}

/** `outside` takes requests for names that are not in the mesh (egress.ts); without it they get 502. */
export const route = (table: () => RouteTable, outside?: Handler): Layer => (next) => (ex) => {
  const t = table();
  const router = t.hosts.get(ex.host) ?? t.fallback;
  if (router === null) return outside ? outside(ex) : respondError(ex, new ProxyError('unknown_service', `unknown service ${ex.host}: not in the mesh`));
  ex.router = router;
  const rule = router.rules.length ? router.match(ex.req, ex.path) : null;
  ex.rule = rule;
  const target = rule === null ? router.target : pickBackend(rule);
  ex.target = target;
  ex.stats = target.stats;
  next(ex);
};
