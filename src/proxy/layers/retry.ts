// Sends a request again, through the layers below (so to another endpoint), when that is safe:
// when nothing reached a server (a refused connection or stream, a failed verification, a reused
// connection closed as we sent), and as the route's rule asks: 5xx and connect failures for
// idempotent requests, gRPC statuses (Envoy's retry_on names) for any call answered trailers-only
// (nothing yet sent to the client) whose body was kept whole, all within Linkerd's retry budget.
// A small body is kept so it can be replayed.
import type { Exchange, Handler, Layer } from '../exchange.js';
import { neverSent, type ErrorCode } from '../errors.js';
import { retryable } from '../routing.js';
import { isGrpc } from '../wire/grpc-status.js';
import type { BodySink, Req } from '../wire/h1-server.js';

/** Bodies up to this size are read before the first try when the rule retries, so they can be sent again. */
export const MAX_RETRY_BODY = 64 * 1024;
/** Tries of a request that never reached a server, before the client gets the error. */
export const MAX_UNSENT_ATTEMPTS = 3;

/**
 * A gRPC call's request body on its way up, copied while it stays within MAX_RETRY_BODY. It is not read first, as
 * other bodies are: a streaming call's client may send more only once answered.
 */
export class KeptBody implements BodySink {
  source: { resume(): void } | null = null;
  private chunks: Buffer[] | null = [];
  private size = 0;
  private complete = false;
  private up: BodySink | null = null;

  pipe(req: Req, up: BodySink): void {
    this.up = up;
    up.source = req;
    req.pipe(this);
  }

  write(chunk: Buffer): boolean {
    if (this.chunks !== null) {
      this.size += chunk.length;
      if (this.size > MAX_RETRY_BODY) this.chunks = null;
      else this.chunks.push(chunk);
    }
    return this.up!.write(chunk);
  }

  end(_chunk?: Buffer, trailers?: string[] | null): void {
    this.complete = true;
    this.up!.end(undefined, trailers);
  }

  /** The whole body, when it all came within the bound. */
  whole(): Buffer | null {
    return this.complete && this.chunks !== null ? Buffer.concat(this.chunks) : null;
  }
}

/** Whether the request can be sent again as it was: no body, a body read first, or a gRPC call's kept whole. */
function replayable(ex: Exchange): boolean {
  if (ex.replayable || ex.body !== null) return true;
  const body = ex.kept?.whole() ?? null;
  if (body === null) return false;
  ex.body = body;
  ex.kept = null;
  return true;
}

/** Whether one more try is allowed by the rule: its count, idempotence (not for a gRPC status), a replayable body, the budget. */
function mayRetry(ex: Exchange, grpc: boolean): boolean {
  const r = ex.rule?.retry;
  if (!r || ex.attempts > r.attempts || !(grpc || retryable(ex)) || !replayable(ex)) return false;
  if (!ex.router!.budget.withdraw(Date.now())) {
    ex.router!.target.stats.count('outbound_http_retry_budget_exhausted_total');
    return false;
  }
  ex.router!.target.stats.count('outbound_http_retries_total');
  return true;
}

/** Nothing was processed: the peer never got it, or a kept-alive connection was already closing. */
function unsent(ex: Exchange, err: NodeJS.ErrnoException, code: ErrorCode, reused: boolean): boolean {
  return (neverSent(code) || (reused && err.code === 'ECONNRESET')) && replayable(ex);
}

export const retry: Layer = (next) => (ex) => {
  ex.attempts = 1;
  ex.router?.budget.deposit(Date.now());
  const r = ex.rule?.retry;
  if (r && !ex.replayable) {
    // With retries on, a small body is read first so it can be sent again; a gRPC call's is copied as it goes.
    if (r.grpcOn !== 0 && isGrpc(ex.req.header('content-type'))) ex.kept = new KeptBody();
    else if (retryable(ex)) {
      const cl = ex.req.contentLength;
      if (cl >= 0 && cl <= MAX_RETRY_BODY) return bufferBody(ex, next);
    }
  }
  next(ex);
};

retry.report = (above, next) => ({
  response(ex, status) {
    const r = ex.rule?.retry;
    if (r) {
      const g = ex.grpcStatus;
      if (g > 0 && (r.grpcOn & (1 << g)) !== 0 && mayRetry(ex, true)) return (ex.again = true);
      if (status >= 500 && r.on5xx && mayRetry(ex, false)) return (ex.again = true);
    }
    return above.response(ex, status);
  },
  failed(ex, err, code, reused) {
    if ((unsent(ex, err, code, reused) && ex.attempts < MAX_UNSENT_ATTEMPTS) || (ex.rule?.retry?.onConnect === true && mayRetry(ex, false))) return (ex.again = true);
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
