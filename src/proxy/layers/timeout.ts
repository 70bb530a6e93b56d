// A rule's timeout, per try as the route model says: a try still running by then is cut, and
// answered 504 when its response had not begun. A timed-out try is never retried: it may still
// be running upstream.
import { ProxyError, respondError, type Exchange, type Layer } from '../exchange.js';
import { MeshFault } from '../errors.js';

function expire(ex: Exchange, ms: number): void {
  ex.timer = null;
  ex.upstream?.destroy(new MeshFault('timeout', `request timed out after ${ms} ms`));
}

export const timeout: Layer = (next) => (ex) => {
  next(ex);
  const ms = ex.rule?.timeoutMs ?? 0;
  // Armed once the try is on its way (none when no endpoint was free).
  if (ms > 0 && ex.upstream !== null) ex.timer = setTimeout(expire, ms, ex, ms);
};

timeout.report = (above) => ({
  response: above.response,
  failed(ex, err, code, reused) {
    if (code !== 'timeout') return above.failed(ex, err, code, reused);
    ex.router?.target.stats.count('outbound_http_timeouts_total');
    respondError(ex, new ProxyError('timeout', err.message));
    return true;
  },
  done(ex) {
    if (ex.timer !== null) {
      clearTimeout(ex.timer);
      ex.timer = null;
    }
    above.done(ex);
  },
});
