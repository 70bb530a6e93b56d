// Header handling as RFC 9110 asks of an intermediary: hop-by-hop headers do not cross the proxy.

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade',
  'proxy-authorization', 'proxy-authenticate',
]);

const HOP_LENGTHS = new Uint8Array(64);
for (const h of HOP_BY_HOP) HOP_LENGTHS[h.length] = 1;
const withDrop = new Map<string, Uint8Array>();
function lengthsWith(drop: string): Uint8Array {
  let l = withDrop.get(drop);
  if (!l) {
    l = HOP_LENGTHS.slice();
    if (drop.length < l.length) l[drop.length] = 1;
    withDrop.set(drop, l);
  }
  return l;
}

/** Headers the mesh sets itself and a client must never be able to supply. */
export const IDENTITY_HEADER = 'mesh-client-id';

/**
 * Copies a raw header list minus hop-by-hop headers, the headers Connection names, and `drop`.
 * Transfer-Encoding stays: whoever writes the request next re-frames the body and needs it to choose chunked framing.
 * With `upgrade`, Connection and Upgrade are kept so the upstream sees the upgrade request.
 */
export function forwardHeaders(raw: string[], upgrade: boolean, drop?: string): string[] {
  let named: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    if (n.length === 10 && n.toLowerCase() === 'connection') {
      for (const t of raw[i + 1]!.split(',')) (named ??= []).push(t.trim().toLowerCase());
    }
  }
  // Most headers cannot be one to drop by their length alone: only those are lower-cased.
  let lengths = drop === undefined ? HOP_LENGTHS : lengthsWith(drop);
  if (named !== undefined) {
    lengths = lengths.slice();
    for (const t of named) if (t.length < lengths.length) lengths[t.length] = 1;
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    if (n.length < lengths.length && lengths[n.length] === 1) {
      const l = n.toLowerCase();
      if (HOP_BY_HOP.has(l)) {
        if (!upgrade || (l !== 'upgrade' && l !== 'connection')) continue;
      } else if (named !== undefined && named.includes(l) && !(upgrade && l === 'upgrade')) {
        continue;
      } else if (l === drop) {
        continue;
      }
    } else if (n.length >= lengths.length && named !== undefined && named.includes(n.toLowerCase())) {
      continue;
    }
    out.push(n, raw[i + 1]!);
  }
  return out;
}

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
export function requestTarget(url: string, host: string | undefined, hosts: number): RequestTarget | string {
  if (hosts > 1) return 'request has more than one Host header';
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
