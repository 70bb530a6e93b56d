// Moves one request and its response between the downstream exchange and an upstream request,
// streaming bodies both ways and mapping upstream failures to the status they mean.
import type { ClientRequest, IncomingMessage } from 'node:http';
import { Exchange, ProxyError, respondError } from './exchange.js';
import { forwardHeaders } from './http-util.js';

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

export interface RelayHooks {
  /** Called once when the exchange is over upstream, however it ended. */
  done(ex: Exchange): void;
  /** Called for a failure before any response; returns true when it retried elsewhere. */
  failed(ex: Exchange, err: NodeJS.ErrnoException, connectFailure: boolean, reused: boolean): boolean;
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
    ex.observe(upRes.statusCode!);
    // Node frames the body for this client itself: chunked for HTTP/1.1, close-delimited for 1.0.
    res.writeHead(upRes.statusCode!, upRes.statusMessage, forwardHeaders(upRes.rawHeaders, false, 'transfer-encoding'));
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
    if (hooks.failed(ex, err, connectFailure, up.reusedSocket)) return;
    const reason = connectFailure
      ? `cannot connect to ${hooks.describe(ex)}: ${code}`
      : `${hooks.describe(ex)} failed: ${err.message}`;
    respondError(ex, new ProxyError(502, reason));
  });
  res.on('close', () => {
    if (!res.writableFinished) up.destroy();
    finish();
  });
  if (ex.replayable) up.end();
  else req.pipe(up);
}
