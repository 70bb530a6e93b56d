// Authorization on the inbound side: the compiled policy decides per request from the peer's
// verified identity, the path and the app port; a denied request gets 403 `denied`. For an
// upgrade, the decision on its request covers everything the upgraded connection carries.
import { ProxyError, respondError, type Exchange, type Layer } from '../exchange.js';
import type { AuthzRequest, CompiledPolicy } from '../../model/policy.js';

export interface AuthorizeOptions {
  /** The workload's own service and namespace: what policy is checked against. */
  namespace: string;
  service: string;
  /** Kubernetes: the Services that select this pod (swapped on config pushes); policy checks them instead of service. */
  services?: () => readonly string[] | undefined;
  /** The current compiled authorization policy (swapped on config pushes). */
  policy: () => CompiledPolicy;
  /** Hears a denial before it is answered (mesh tap shows it with its reason); the allowed path never calls it. */
  denied?(ex: Exchange, reason: string): void;
}

export const authorize = (o: AuthorizeOptions): Layer => {
  // One request object reused for every check: the check is synchronous and allocates nothing.
  const authz: AuthzRequest = { namespace: o.namespace, toService: o.service, clientIdentity: null, port: 0, path: '/' };
  return (next) => (ex) => {
    authz.clientIdentity = ex.peer === '' ? null : ex.peer;
    authz.path = ex.path;
    authz.port = ex.appPort;
    authz.toServices = o.services?.();
    const decision = o.policy().check(authz);
    if (!decision.allowed) {
      ex.stats.denied(decision.rule);
      o.denied?.(ex, decision.reason);
      return respondError(ex, new ProxyError('denied', decision.reason));
    }
    ex.authzRule = ex.stats.allowed(decision.rule);
    next(ex);
  };
};
