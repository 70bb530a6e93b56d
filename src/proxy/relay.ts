// Moves one request and its response between the downstream exchange and an upstream request,
// streaming bodies both ways and mapping upstream failures to the status they mean.
import type { ClientRequest, IncomingMessage } from 'node:http';
import { Exchange, ProxyError, respondError } from './exchange.js';
import { forwardHeaders } from './http-util.js';

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

/** What to do after an upstream attempt failed: try again, it was answered already, or 502. */
export type Outcome = 'retry' | 'handled' | 'fail';

export interface RelayHooks {
  /** Called once when an attempt is over upstream, however it ended. */
  done(ex: Exchange): void;
  /** Response headers arrived; true sends the request again (the response is dropped unseen). */
  response(ex: Exchange, status: number): boolean;
  /** A failure before any response. */
  failed(ex: Exchange, err: NodeJS.ErrnoException, connectFailure: boolean, reused: boolean): Outcome;
  describe(ex: Exchange): string;
}

export function relay(ex: Exchange, up: ClientRequest, hooks: RelayHooks): void {
  const { req, res } = ex;
  let finished = false;
  const finish = () => {
    if (!finished) {
      finished = true;
      hooks.done(ex);
    }
  };
  up.on('response', (upRes: IncomingMessage) => {
    const status = upRes.statusCode!;
    if (hooks.response(ex, status)) {
      upRes.resume();
      finish();
      ex.rebalance!(ex);
      return;
    }
    ex.observe(status);
    // Node frames the body for this client itself: chunked for HTTP/1.1, close-delimited for 1.0.
    res.writeHead(status, upRes.statusMessage, forwardHeaders(upRes.rawHeaders, false, 'transfer-encoding'));
    upRes.pipe(res);
    upRes.on('end', finish);
    upRes.on('aborted', () => {
      finish();
      res.destroy();
    });
  });
  up.on('error', (err: NodeJS.ErrnoException) => {
    finish();
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const code = err.code ?? '';
    const connectFailure = CONNECT_ERRORS.has(code);
    const outcome = hooks.failed(ex, err, connectFailure, up.reusedSocket);
    if (outcome === 'retry') return ex.rebalance!(ex);
    if (outcome === 'handled') return;
    const reason = connectFailure
      ? `cannot connect to ${hooks.describe(ex)}: ${code}`
      : `${hooks.describe(ex)} failed: ${err.message}`;
    respondError(ex, new ProxyError(502, reason));
  });
  res.on('close', () => {
    if (!res.writableFinished) up.destroy();
    finish();
  });
  if (ex.body !== null) up.end(ex.body);
  else if (ex.replayable) up.end();
  else req.pipe(up);
}
