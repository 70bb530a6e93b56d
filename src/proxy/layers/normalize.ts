// Checks the request line and headers an intermediary must refuse, and names the target authority.
// The inbound side reads its requests through the same function: one set of rules on every side.
import { Exchange, ProxyError, respondError, type Layer } from '../exchange.js';
import { hostOnly, requestHeaders, requestTarget, type RequestTarget } from '../http-util.js';

/**
 * Reads a request's target into its exchange (host, origin-form path, the headers it goes on with, carrying
 * `identity` if given); answers 400 and closes the connection, returning null, when the request must be refused.
 */
export function readTarget(ex: Exchange, identity: string | null): RequestTarget | null {
  const { req } = ex;
  const t = requestTarget(req.url, req.host, req.hosts, req.minor);
  if (typeof t === 'string') {
    ex.res.shouldKeepAlive = false;
    respondError(ex, new ProxyError(400, t));
    return null;
  }
  ex.host = hostOnly(t.authority);
  ex.path = t.path;
  ex.headers = requestHeaders(req, t.authority, identity);
  ex.replayable = !req.hasBody;
  return t;
}

export const normalize: Layer = (next) => (ex: Exchange) => {
  if (readTarget(ex, null) !== null) next(ex);
};
