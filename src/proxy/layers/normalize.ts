// Checks the request line and headers an intermediary must refuse, and names the target authority.
import { Exchange, ProxyError, respondError, type Layer } from '../exchange.js';
import { forwardHeaders, hostCount, hostOnly, IDENTITY_HEADER, requestTarget } from '../http-util.js';

export const normalize: Layer = (next) => (ex: Exchange) => {
  const { req } = ex;
  const raw = req.rawHeaders;
  const te = req.headers['transfer-encoding'];
  if (te !== undefined && req.httpVersionMinor === 0 && req.httpVersionMajor === 1) {
    ex.res.shouldKeepAlive = false;
    return respondError(ex, new ProxyError(400, 'Transfer-Encoding is not allowed in HTTP/1.0'));
  }
  const t = requestTarget(req.url ?? '/', req.headers.host, hostCount(raw));
  if (typeof t === 'string') return respondError(ex, new ProxyError(400, t));
  ex.host = hostOnly(t.authority);
  ex.path = t.path;
  ex.headers = forwardHeaders(raw, false, IDENTITY_HEADER);
  const cl = req.headers['content-length'];
  ex.replayable = te === undefined && (cl === undefined || cl === '0');
  next(ex);
};
