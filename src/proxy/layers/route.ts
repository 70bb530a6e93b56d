// Picks the service a request is for from its authority, then the route rule that matches it and a
// version subset by weight. The table is rebuilt on config changes; requests only look it up.
import { ProxyError, respondError, type Handler, type Layer } from '../exchange.js';
import { pickBackend, type ServiceRouter } from '../routing.js';
import type { Target } from '../balancer.js';

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

/** What a connection's routing needs (tcp.ts): the host it names, and where routing puts its service and subset. */
export interface Routed {
  readonly host: string;
  router: ServiceRouter | null;
  target: Target | null;
}

/** The route step of the connection stack: the same table, its service's default split; `outside` takes names not in the mesh. */
export function routeConnection<X extends Routed>(table: () => RouteTable, outside: Handler<X>): Layer<X> {
  return (next) => (c) => {
    const router = table().hosts.get(c.host);
    if (router === undefined) return outside(c);
    c.router = router;
    c.target = defaultTarget(router);
    next(c);
  };
}

/** Opaque traffic has no request to match: the service's default rule (the last without matches) splits it. */
export function defaultTarget(router: ServiceRouter): Target {
  const rules = router.rules;
  let target = router.target;
  for (let i = 0; i < rules.length; i++) if (rules[i]!.matches === null) target = pickBackend(rules[i]!);
  return target;
}
