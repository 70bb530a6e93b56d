// Picks the service a request is for from its authority; the table is rebuilt on config changes.
import type { Target } from '../balancer.js';
import { ProxyError, respondError, type Layer } from '../exchange.js';

export interface RouteTable {
  /** Every accepted spelling of every service name → its target. */
  hosts: Map<string, Target>;
  /** Where requests for names that are not in the mesh go (the ingress's default service). */
  fallback: Target | null;
}

export const route = (table: () => RouteTable): Layer => (next) => (ex) => {
  const t = table();
  const target = t.hosts.get(ex.host) ?? t.fallback;
  if (target === null) return respondError(ex, new ProxyError(502, `unknown service ${ex.host}: not in the mesh`));
  ex.target = target;
  ex.stats = target.stats;
  next(ex);
};
