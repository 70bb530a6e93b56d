// Chooses an endpoint of the routed service; the transport comes back here to try another.
import { ProxyError, respondError, type Exchange, type Layer } from '../exchange.js';

export const balance: Layer = (next) => {
  const handler = (ex: Exchange): void => {
    const ep = ex.target!.pick();
    if (ep === null) {
      const t = ex.target!;
      const reason = t.endpoints.length === 0
        ? `no endpoints for service ${t.name}.${t.namespace}`
        : `no available endpoints for service ${t.name}.${t.namespace}`;
      return respondError(ex, new ProxyError(503, reason));
    }
    ex.endpoint = ep;
    ex.stats = ep.stats;
    ex.attempts++;
    ex.rebalance = handler;
    next(ex);
  };
  return handler;
};
