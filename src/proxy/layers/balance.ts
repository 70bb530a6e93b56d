// Chooses an endpoint of the routed subset; the transport comes back here to try another.
import { ProxyError, respondError, type Exchange, type Layer } from '../exchange.js';

export const balance: Layer = (next) => {
  const handler = (ex: Exchange): void => {
    const target = ex.target!;
    const ep = target.pick();
    if (ep === null) return respondError(ex, new ProxyError(503, target.unavailableReason()));
    if (ex.attempts === 0) ex.router?.budget.deposit(Date.now());
    ex.endpoint = ep;
    ex.stats = ep.stats;
    ex.attempts++;
    ex.rebalance = handler;
    next(ex);
  };
  return handler;
};
