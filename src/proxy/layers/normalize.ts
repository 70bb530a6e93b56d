// Checks the request line and headers an intermediary must refuse, and names the target authority.
import { Exchange, ProxyError, respondError, type Layer } from '../exchange.js';
import { forwardHeaders, hostCount, hostOnly, IDENTITY_HEADER, sameAuthority } from '../http-util.js';

export const normalize: Layer = (next) => (ex: Exchange) => {
  const { req } = ex;
  const raw = req.rawHeaders;
  const hosts = hostCount(raw);
  if (hosts > 1) return respondError(ex, new ProxyError(400, 'request has more than one Host header'));
  const te = req.headers['transfer-encoding'];
  if (te !== undefined && req.httpVersionMinor === 0 && req.httpVersionMajor === 1) {
    ex.res.shouldKeepAlive = false;
    return respondError(ex, new ProxyError(400, 'Transfer-Encoding is not allowed in HTTP/1.0'));
  }
  let authority = req.headers.host ?? '';
  let path = req.url ?? '/';
  if (path.charCodeAt(0) !== 47 /* / */) {
    if (path === '*' ) return respondError(ex, new ProxyError(400, 'asterisk-form is not supported'));
    if (!path.startsWith('http://')) return respondError(ex, new ProxyError(400, 'only http:// absolute URIs are proxied'));
    const slash = path.indexOf('/', 7);
    const uriAuthority = slash < 0 ? path.slice(7) : path.slice(7, slash);
    if (uriAuthority === '' || uriAuthority.includes('@')) return respondError(ex, new ProxyError(400, 'invalid authority in request URI'));
    if (hosts === 1 && !sameAuthority(uriAuthority, authority)) {
      return respondError(ex, new ProxyError(400, 'Host header disagrees with the request URI'));
    }
    authority = uriAuthority;
    path = slash < 0 ? '/' : path.slice(slash);
  }
  if (authority === '') return respondError(ex, new ProxyError(400, 'request names no host'));
  ex.host = hostOnly(authority);
  ex.path = path;
  ex.headers = forwardHeaders(raw, false, IDENTITY_HEADER);
  const cl = req.headers['content-length'];
  ex.replayable = te === undefined && (cl === undefined || cl === '0');
  next(ex);
};
