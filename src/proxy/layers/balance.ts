// Chooses an endpoint of the routed subset, and keeps its account: load in flight, latency of the
// successes, and the failures that eject it (a connect failure at once, others as they accrue).
import { performance } from 'node:perf_hooks';
import { respondError, type Exchange, type Layer } from '../exchange.js';
import { neverSent } from '../errors.js';

export const balance: Layer = (next) => (ex) => {
  const ep = ex.target!.pick();
  if (ep === null) return respondError(ex, ex.target!.unavailable());
  ex.endpoint = ep;
  ex.stats = ep.stats;
  ep.inflight++;
  next(ex);
};

function failed(ex: Exchange, connect: boolean): void {
  if (ex.endpoint!.failed(Date.now(), connect)) ex.router?.target.stats.count('outbound_endpoint_ejections_total');
}

balance.report = (above) => ({
  response(ex, status) {
    if (status >= 500) failed(ex, false);
    // A handshake's time says nothing about the endpoint's load: count the success, not the latency.
    else ex.endpoint!.succeeded(ex.freshConnection ? -1 : performance.now() - ex.sent, Date.now());
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
