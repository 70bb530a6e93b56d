// Header lists between HTTP/1.1's flat [name, value, ...] and HTTP/2's header objects. HTTP/2 has
// no connection-specific headers (RFC 9113 8.2.2): they are never forwarded either way.
import type { OutgoingHttpHeaders } from 'node:http2';

const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'http2-settings']);

/** A header (lower-case name) that an HTTP/2 message must not carry; `te: trailers` is the one TE allowed. */
export function isConnectionHeader(name: string, value: string): boolean {
  return CONNECTION_SPECIFIC.has(name) && !(name === 'te' && value.trim().toLowerCase() === 'trailers');
}

/**
 * An HTTP/2 header object from a flat list, without connection-specific headers, Host (the caller
 * sets :authority) or the framing of the other side (HTTP/2 frames by itself; Content-Length stays).
 */
export function h2Headers(raw: readonly string[]): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!.toLowerCase();
    const v = raw[i + 1]!;
    if (CONNECTION_SPECIFIC.has(n) || n === 'host') continue;
    const had = out[n];
    if (had === undefined) out[n] = v;
    else if (n === 'set-cookie') out[n] = Array.isArray(had) ? [...had, v] : [String(had), v];
    // Node sends a field once per name: several values are one list, as HTTP/1.1 allows.
    else out[n] = `${String(had)}, ${v}`;
  }
  return out;
}

/** A flat list from a received HTTP/2 header object (pseudo-headers left out). */
export function flatHeaders(h: Record<string, string | string[] | undefined>): string[] {
  const out: string[] = [];
  for (const n in h) {
    if (n.charCodeAt(0) === 58 /* : */) continue;
    const v = h[n];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out.push(n, x);
    else out.push(n, v);
  }
  return out;
}
