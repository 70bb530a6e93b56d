// Sends a request again, through the layers below (so to another endpoint), when that is safe:
// when nothing reached a server (a refused connection or stream, a failed verification, a reused
// connection closed as we sent), and as the route's rule asks (5xx, connect failures) for
// idempotent requests within Linkerd's retry budget. A small body is kept so it can be replayed.
import type { Exchange, Handler, Layer } from '../exchange.js';
import { neverSent, type ErrorCode } from '../errors.js';
import { retryable } from '../routing.js';

/** Bodies up to this size are read before the first try when the rule retries, so they can be sent again. */
export const MAX_RETRY_BODY = 64 * 1024;
/** Tries of a request that never reached a server, before the client gets the error. */
export const MAX_UNSENT_ATTEMPTS = 3;

/** Whether one more try is allowed by the rule: its count, idempotence, a replayable body, the budget. */
function mayRetry(ex: Exchange): boolean {
  const r = ex.rule?.retry;
  if (!r || ex.attempts > r.attempts || !(ex.replayable || ex.body !== null) || !retryable(ex)) return false;
  if (!ex.router!.budget.withdraw(Date.now())) {
    ex.router!.target.stats.count('outbound_http_retry_budget_exhausted_total');
    return false;
  }
  ex.router!.target.stats.count('outbound_http_retries_total');
  return true;
}

/** Nothing was processed: the peer never got it, or a kept-alive connection was already closing. */
function unsent(ex: Exchange, err: NodeJS.ErrnoException, code: ErrorCode, reused: boolean): boolean {
  return (neverSent(code) || (reused && err.code === 'ECONNRESET')) && (ex.replayable || ex.body !== null);
}

export const retry: Layer = (next) => (ex) => {
  ex.attempts = 1;
  ex.router?.budget.deposit(Date.now());
  // With retries on, a small body is read first so it can be sent again.
  if (ex.rule?.retry && !ex.replayable && retryable(ex)) {
    const cl = ex.req.contentLength;
    if (cl >= 0 && cl <= MAX_RETRY_BODY) return bufferBody(ex, next);
  }
  next(ex);
};

retry.report = (above, next) => ({
  response(ex, status) {
    if (status >= 500 && ex.rule?.retry?.on5xx === true && mayRetry(ex)) return (ex.again = true);
    return above.response(ex, status);
  },
  failed(ex, err, code, reused) {
    if ((unsent(ex, err, code, reused) && ex.attempts < MAX_UNSENT_ATTEMPTS) || (ex.rule?.retry?.onConnect === true && mayRetry(ex))) return (ex.again = true);
    return above.failed(ex, err, code, reused);
  },
  // The next try starts once this one is over below (its endpoint's load and timer released).
  done(ex) {
    if (!ex.again) return above.done(ex);
    ex.again = false;
    // The client went away meanwhile: nobody to answer.
    if (ex.res.destroyed) return above.done(ex);
    ex.attempts++;
    next(ex);
  },
});

function bufferBody(ex: Exchange, then: Handler): void {
  const chunks: Buffer[] = [];
  ex.req.pipe({
    write(c: Buffer) {
      chunks.push(c);
      return true;
    },
    end() {
      ex.body = Buffer.concat(chunks);
      then(ex);
    },
  });
}
