// Checks the request line and headers an intermediary must refuse, and names the target authority.
// The inbound side and upgrades read their requests through the same functions: one set of rules on every side.
import { Exchange, ProxyError, respondError, type Layer } from '../exchange.js';
import { requestHeaders } from '../wire/h1-headers.js';

/**
 * Reads a request's target into its exchange (host, origin-form path, the headers it goes on with, carrying
 * `identity` if given); answers 400 and closes the connection, returning null, when the request must be refused.
 */
export function readTarget(ex: Exchange, identity: string | null): RequestTarget | null {
  const { req } = ex;
  const t = requestTarget(req.url, req.host, req.hosts, req.minor);
  if (typeof t === 'string') {
    ex.res.shouldKeepAlive = false;
    respondError(ex, new ProxyError('bad_request', t));
    return null;
  }
  ex.authority = t.authority;
  ex.host = hostOnly(t.authority);
  ex.path = t.path;
  ex.headers = requestHeaders(req, t.authority, identity, ex.upgrade);
  ex.replayable = !req.hasBody;
  return t;
}

export const normalize: Layer = (next) => (ex: Exchange) => {
  if (readTarget(ex, null) !== null) next(ex);
};

/** "Reviews.default:9080" → "reviews.default"; IPv6 literals keep their brackets. */
export function hostOnly(authority: string): string {
  const a = authority.toLowerCase();
  if (a.startsWith('[')) {
    const end = a.indexOf(']');
    return end > 0 ? a.slice(0, end + 1) : a;
  }
  const c = a.lastIndexOf(':');
  return c >= 0 ? a.slice(0, c) : a;
}

/** Equal authorities up to case and an explicit default port. */
export function sameAuthority(a: string, b: string): boolean {
  const norm = (s: string) => {
    const l = s.toLowerCase();
    return l.endsWith(':80') ? l.slice(0, -3) : l;
  };
  return norm(a) === norm(b);
}

export interface RequestTarget {
  authority: string;
  path: string;
}

/**
 * The authority and origin-form path a request names, or why it must be refused (400):
 * two Host headers, an absolute URI that disagrees with Host, or one we do not proxy.
 */
export function requestTarget(url: string, host: string | undefined, hosts: number, minor = 1): RequestTarget | string {
  if (hosts > 1) return 'request has more than one Host header';
  // RFC 9112 3.2: an HTTP/1.1 request without Host is refused, even when its URI names the authority.
  if (hosts === 0 && minor === 1) return 'HTTP/1.1 request without a Host header';
  let authority = host ?? '';
  let path = url;
  if (path.charCodeAt(0) !== 47 /* / */) {
    if (path === '*') return 'asterisk-form is not supported';
    if (!path.startsWith('http://')) return 'only http:// absolute URIs are proxied';
    const slash = path.indexOf('/', 7);
    const uriAuthority = slash < 0 ? path.slice(7) : path.slice(7, slash);
    if (uriAuthority === '' || uriAuthority.includes('@')) return 'invalid authority in request URI';
    if (hosts === 1 && !sameAuthority(uriAuthority, authority)) return 'Host header disagrees with the request URI';
    authority = uriAuthority;
    path = slash < 0 ? '/' : path.slice(slash);
  }
  if (authority === '') return 'request names no host';
  return { authority, path };
}
