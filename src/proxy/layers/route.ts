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
  /** Meshed pods by address (IPv6 in brackets): what an app that dials a pod IP reaches (headless Services, StatefulSets). */
  pods?: Map<string, Pinned>;
}

/** One endpoint of a service, as the only one a connection or request to its address may go to. */
export interface Pinned {
  router: ServiceRouter;
  target: Target;
}

/**
 * On a socket transparent capture handed to the HTTP listener: the host (IPv6 in brackets) the app dialled, so a
 * request whose Host is not in the mesh still goes through it when that address is a meshed service or pod.
 */
export const ORIGINAL_DST = Symbol('mesh.originalDst');
type Captured = { [ORIGINAL_DST]?: string };

/** `outside` takes requests for names that are not in the mesh (egress.ts); without it they get 502. */
export const route = (table: () => RouteTable, outside?: Handler): Layer => (next) => (ex) => {
  const t = table();
  let router = t.hosts.get(ex.host);
  let pinned: Pinned | undefined;
  if (router === undefined) {
    // Not a service name: a pod's address (as Host, or where a captured connection went), a captured service address.
    const dst = (ex.req.socket as Captured)[ORIGINAL_DST];
    pinned = t.pods?.get(ex.host) ?? (dst === undefined ? undefined : t.pods?.get(dst));
    router = pinned?.router ?? (dst === undefined ? undefined : t.hosts.get(dst));
  }
  router ??= t.fallback ?? undefined;
  if (router === undefined) return outside ? outside(ex) : respondError(ex, new ProxyError('unknown_service', `unknown service ${ex.host}: not in the mesh`));
  ex.router = router;
  const rule = router.rules.length ? router.match(ex.req, ex.path) : null;
  ex.rule = rule;
  // A pod the app chose is not re-balanced: the rule's timeout and retries apply, not its split.
  const target = pinned !== undefined ? pinned.target : rule === null ? router.target : pickBackend(rule);
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
    const t = table();
    const router = t.hosts.get(c.host);
    if (router !== undefined) {
      c.router = router;
      c.target = defaultTarget(router);
      return next(c);
    }
    // A meshed pod's address: through the mesh to that pod alone.
    const pinned = t.pods?.get(c.host);
    if (pinned === undefined) return outside(c);
    c.router = pinned.router;
    c.target = pinned.target;
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
