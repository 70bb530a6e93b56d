// Checks the request line and headers an intermediary must refuse, and names the target authority.
import { Exchange, ProxyError, respondError, type Layer } from '../exchange.js';
import { forwardHeaders, hostOnly, IDENTITY_HEADER, requestTarget } from '../http-util.js';

export const normalize: Layer = (next) => (ex: Exchange) => {
  const { req } = ex;
  if (req.chunked && req.minor === 0) {
    ex.res.shouldKeepAlive = false;
    return respondError(ex, new ProxyError(400, 'Transfer-Encoding is not allowed in HTTP/1.0'));
  }
  const t = requestTarget(req.url, req.host, req.hosts);
  if (typeof t === 'string') return respondError(ex, new ProxyError(400, t));
  ex.host = hostOnly(t.authority);
  ex.path = t.path;
  ex.headers = forwardHeaders(req.rawHeaders, false, IDENTITY_HEADER);
  ex.replayable = !req.hasBody;
  next(ex);
};
