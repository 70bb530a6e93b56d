// Fault injection per rule, as Istio's VirtualService has: delay and abort a share of requests.
// An abort with a gRPC status reaches gRPC callers as that status (respondError), others as its HTTP status.
import { ProxyError, respondError, type Layer } from '../exchange.js';

export const fault: Layer = (next) => (ex) => {
  const f = ex.rule?.fault;
  if (!f) return next(ex);
  if (f.abortPercent > 0 && Math.random() * 100 < f.abortPercent) {
    return respondError(ex, new ProxyError('fault', 'fault injected: abort', f.abortStatus, f.abortGrpc || undefined));
  }
  if (f.delayPercent > 0 && Math.random() * 100 < f.delayPercent) {
    const timer = setTimeout(() => next(ex), f.delayMs);
    ex.res.once('close', () => clearTimeout(timer));
    return;
  }
  next(ex);
};
