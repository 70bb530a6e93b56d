// Header lists between HTTP/1.1's flat [name, value, ...] and HTTP/2's header blocks. HTTP/2 has
// no connection-specific headers (RFC 9113 8.2.2): they are never forwarded either way.
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'http2-settings']);

/** A header (lower-case name) that an HTTP/2 message must not carry; `te: trailers` is the one TE allowed. */
export function isConnectionHeader(name: string, value: string): boolean {
  return CONNECTION_SPECIFIC.has(name) && !(name === 'te' && value.trim().toLowerCase() === 'trailers');
}

/** Fields for an HTTP/2 block from a flat list, appended to `out`: lower-case names, without Host (the caller sets :authority) or anything connection-specific. */
export function h2Fields(raw: readonly string[], out: string[] = []): string[] {
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!.toLowerCase();
    if (n === 'host' || isConnectionHeader(n, raw[i + 1]!)) continue;
    out.push(n, raw[i + 1]!);
  }
  return out;
}
