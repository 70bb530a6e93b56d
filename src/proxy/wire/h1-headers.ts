// Header handling as RFC 9110 asks of an intermediary: hop-by-hop headers do not cross the proxy, a message goes on
// with the framing the proxy read it by (never the one it arrived with), and identity is the proxy's alone to set.
import { isIdentityHeader } from './h1-parse.js';

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade',
  'proxy-authorization', 'proxy-authenticate', 'http2-settings',
]);

// Names to look at, by length: hop-by-hop ones, the framing headers and the identity header (14, like content-length).
const LOOK_AT = new Uint8Array(64);
for (const h of HOP_BY_HOP) LOOK_AT[h.length] = 1;
LOOK_AT[14] = 1;
LOOK_AT[17] = 1;

/** The header carrying the peer's verified identity to the app: set by the inbound proxy, never passed on. */
export const IDENTITY_HEADER = 'mesh-client-id';

/**
 * Copies a raw header list minus hop-by-hop headers, the headers Connection names, Content-Length and
 * Transfer-Encoding (whoever writes the message next frames it itself), and the identity header in any spelling.
 * The parser has already refused a Connection header naming a framing, routing or identity header.
 * With `upgrade`, Connection and Upgrade are kept so the upstream sees the upgrade request.
 */
export function forwardHeaders(raw: string[], upgrade: boolean): string[] {
  let named: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    if (n.length === 10 && n.toLowerCase() === 'connection') {
      for (const t of raw[i + 1]!.split(',')) (named ??= []).push(t.trim().toLowerCase());
    }
  }
  // Most headers cannot be one to drop by their length alone: only those are lower-cased.
  let lengths = LOOK_AT;
  if (named !== undefined) {
    lengths = lengths.slice();
    for (const t of named) if (t.length < lengths.length) lengths[t.length] = 1;
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    if (n.length < lengths.length) {
      if (lengths[n.length] === 1) {
        const l = n.toLowerCase();
        if (HOP_BY_HOP.has(l)) {
          if (!upgrade || (l !== 'upgrade' && l !== 'connection')) continue;
        } else if (l === 'content-length' || l === 'transfer-encoding' || isIdentityHeader(l)) {
          continue;
        } else if (named !== undefined && named.includes(l)) {
          continue;
        }
      }
    } else if (named !== undefined && named.includes(n.toLowerCase())) {
      continue;
    }
    out.push(n, raw[i + 1]!);
  }
  return out;
}

/** What a request's onward headers are made from: its head as parsed. */
export interface Framed {
  readonly rawHeaders: string[];
  readonly hosts: number;
  readonly contentLength: number;
  readonly chunked: boolean;
  /** Its client takes response trailers (TE: trailers, or HTTP/2): the next hop may send them, as on its behalf. */
  readonly teTrailers?: boolean;
}

/**
 * A request's headers as they go on: its end-to-end headers, a Host when it named its authority only in the URI,
 * exactly one framing header (the one its body was read by) and the identity this proxy verified, if any.
 */
export function requestHeaders(req: Framed, authority: string, identity: string | null, upgrade = false): string[] {
  const out = forwardHeaders(req.rawHeaders, upgrade);
  if (req.hosts === 0) out.push('host', authority);
  if (req.chunked) out.push('transfer-encoding', 'chunked');
  else if (req.contentLength >= 0) out.push('content-length', String(req.contentLength));
  if (identity !== null) out.push(IDENTITY_HEADER, identity);
  if (req.teTrailers === true) out.push('te', 'trailers');
  return out;
}

// Fields a message may not carry in its trailers (RFC 9110 6.5.1): framing, routing, authentication, request
// modifiers, response controls and content format are read before the content, so a trailer could only contradict
// them; hop-by-hop fields are the connection's. The framing, Host and identity ones are refused as they are parsed.
const NOT_TRAILING = new Set([
  'content-length', 'transfer-encoding', 'host', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade',
  'http2-settings', 'proxy-authorization', 'proxy-authenticate', 'authorization', 'www-authenticate', 'cookie', 'set-cookie',
  'content-type', 'content-encoding', 'content-range', 'content-location', 'expect', 'max-forwards', 'range', 'if-match',
  'if-none-match', 'if-modified-since', 'if-unmodified-since', 'if-range', 'cache-control', 'age', 'expires', 'date',
  'location', 'retry-after', 'vary', 'pragma', 'warning',
]);

/**
 * The trailer fields that go on, as a new list (null when none is left): what RFC 9110 6.5.1 lets trail, never an
 * identity header nor a pseudo-header. Runs only for a message that had trailers.
 */
export function forwardTrailers(raw: readonly string[]): string[] | null {
  let out: string[] | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    const l = n.toLowerCase();
    if (NOT_TRAILING.has(l) || isIdentityHeader(l) || l.charCodeAt(0) === 58 /* : */) continue;
    (out ??= []).push(n, raw[i + 1]!);
  }
  return out;
}

// Upgrades to another HTTP would carry requests no policy saw: they are not upgrades the proxy makes.
const HTTP_PROTOCOL = /^(h2c|h2|http)(\/|$)/;
const PROTOCOL = /^[!#$%&'*+\-.^_`|~0-9a-z]+(\/[!#$%&'*+\-.^_`|~0-9a-z]+)?$/;

/**
 * Whether a request's Upgrade is one the proxy carries out (the authorization of the request then covers the whole
 * upgraded connection): a GET on HTTP/1.1 with `Connection: upgrade` and one Upgrade header naming one protocol that
 * is not HTTP (WebSocket and the like). Any other Upgrade is ignored, as RFC 9110 7.8 allows: the request is served as
 * an ordinary one and its Upgrade header dropped as hop-by-hop.
 */
export function tunnels(h: { method: string; minor: number; connUpgrade: boolean; upgrades: number; upgradeTo: string }): boolean {
  return h.connUpgrade && h.upgrades === 1 && h.minor === 1 && h.method === 'GET' && PROTOCOL.test(h.upgradeTo) && !HTTP_PROTOCOL.test(h.upgradeTo);
}
