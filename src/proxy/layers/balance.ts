// Chooses an endpoint of the routed subset, and keeps its account: load in flight, latency of the
// successes, and the failures that eject it (a connect failure at once, others as they accrue).
import { ProxyError, respondError, type Layer, type Report } from '../exchange.js';
import { neverSent } from '../errors.js';
import type { Endpoint, Target } from '../balancer.js';
import type { ServiceRouter } from '../routing.js';
import { now as clockNow } from '../../util/clock.js';

/** What balancing needs of what passes through it: an exchange (a request), or a connection (tcp.ts). */
export interface Balanced {
  target: Target | null;
  endpoint: Endpoint | null;
  router: ServiceRouter | null;
  /** The try opened a new connection, so its time includes the handshake. */
  freshConnection: boolean;
  /** When the try was sent. */
  sent: number;
}

export const balance: Layer = (next) => (ex) => {
  const none = pick(ex);
  if (none !== null) return respondError(ex, none);
  ex.stats = ex.endpoint!.stats;
  next(ex);
};

/** Picks an endpoint and counts it loaded, or returns why none is free; the same for requests and connections. */
export function pick(x: Balanced): ProxyError | null {
  const ep = x.target!.pick();
  if (ep === null) return x.target!.unavailable();
  x.endpoint = ep;
  ep.inflight++;
  return null;
}

function failed(ex: Balanced, connect: boolean): void {
  if (ex.endpoint!.failed(Date.now(), connect)) ex.router?.target.stats.count('outbound_endpoint_ejections_total');
}

/** The endpoint's account of how a try went: latency of successes, ejection on failures, load released when done. */
export const accounting = <X extends Balanced>(above: Report<X>): Report<X> => ({
  response(ex, status) {
    if (status >= 500) failed(ex, false);
    // A handshake's time says nothing about the endpoint's load: count the success, not the latency.
    else ex.endpoint!.succeeded(ex.freshConnection ? -1 : clockNow() - ex.sent, Date.now());
    return above.response(ex, status);
  },
  failed(ex, err, code, reused) {
    // A peer that cannot be reached or fails verification is ejected at once: it would take every
    // request the balancer gives it, fail them all, and look fast doing it. A stream it refused
    // (at its concurrency limit) and a timed-out try accrue; other failures say nothing of it.
    if (code === 'timeout') failed(ex, false);
    else if (neverSent(code)) failed(ex, code !== 'refused');
    return above.failed(ex, err, code, reused);
  },
  done(ex) {
    ex.endpoint!.inflight--;
    above.done(ex);
  },
});

balance.report = accounting;

/** The balance step of the connection stack (tcp.ts): the same pick and account; a connection refused says why. */
export function balanceConnections<X extends Balanced & { refuse(err: ProxyError): void }>(): Layer<X> {
  const layer: Layer<X> = (next) => (c) => {
    const none = pick(c);
    if (none !== null) return c.refuse(none);
    next(c);
  };
  layer.report = accounting;
  return layer;
}
