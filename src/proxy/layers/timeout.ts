// A rule's timeout, per try as the route model says, and a gRPC call's own deadline (its grpc-timeout, for
// the whole call, retries included): a try still running when the nearer one passes is cut, answered 504
// (gRPC: DEADLINE_EXCEEDED) when its response had not begun. The server is told the time left as its
// grpc-timeout, as Linkerd and Envoy pass it on. A timed-out try is never retried: it may still be running upstream.
// The inbound side runs it too (no rules there): a call whose caller's sidecar did not enforce its deadline is ended
// all the same, with DEADLINE_EXCEEDED.
import { ProxyError, respondError, type Exchange, type Layer } from '../exchange.js';
import { MeshFault } from '../errors.js';
import { formatGrpcTimeout, grpcTimeoutMs, isGrpc } from '../wire/grpc-status.js';
import { now as clockNow } from '../../util/clock.js';

/** setTimeout's longest delay; a later deadline is left to the client. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const NAME = 'grpc-timeout';

function expire(ex: Exchange, ms: number): void {
  ex.timer = null;
  const up = ex.upstream;
  const why = `request timed out after ${Math.round(ms)} ms`;
  // A gRPC response already under way (its head came, even if it has not gone out) ends with DEADLINE_EXCEEDED in
  // its trailers rather than a reset stream.
  if ((ex.res.headersSent || ex.responding) && (ex.deadline > 0 || isGrpc(ex.req.header('content-type')))) {
    ex.router?.target.stats.count('outbound_http_timeouts_total');
    // The proxy answered: counted as its error, and as the DEADLINE_EXCEEDED it sent (relay.ts).
    ex.error = 'timeout';
    ex.stats.error('timeout');
    ex.res.end(undefined, ['grpc-status', '4', 'grpc-message', why]);
  }
  up?.destroy(new MeshFault('timeout', why));
}

/** The index of the grpc-timeout value in a flat header list, or -1. */
function grpcTimeoutAt(headers: string[]): number {
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i]!;
    if (n.length === 12 && n.toLowerCase() === NAME) return i + 1;
  }
  return -1;
}

export const timeout: Layer = (next) => (ex) => {
  let ms = ex.rule?.timeoutMs ?? 0;
  if (ex.deadline === 0) {
    // Once per call: a value that is not a grpc-timeout is ignored, as Envoy does.
    const at = grpcTimeoutAt(ex.headers);
    const t = at < 0 ? -1 : grpcTimeoutMs(ex.headers[at]!);
    ex.deadline = t < 0 ? -1 : ex.start + t;
  }
  if (ex.deadline > 0) {
    const left = ex.deadline - clockNow();
    if (left < 1) {
      ex.router?.target.stats.count('outbound_http_timeouts_total');
      return respondError(ex, new ProxyError('timeout', "the call's grpc-timeout passed"));
    }
    if (ms === 0 || left < ms) ms = left;
    ex.headers[grpcTimeoutAt(ex.headers)] = formatGrpcTimeout(ms);
  }
  next(ex);
  // Armed once the try is on its way (none when no endpoint was free).
  if (ms > 0 && ms <= MAX_TIMER_MS && ex.upstream !== null) ex.timer = setTimeout(expire, ms, ex, ms);
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
