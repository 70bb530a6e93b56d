// Byte sequences for the property test: a few requests built from the pieces smugglers use (framing headers in
// their spellings, identity headers, upgrades, request-target forms, chunked bodies with extensions and trailers),
// then bytes inserted, dropped or repeated where a parser's edge cases are.
import fc from 'fast-check';

const FORGED = 'spiffe://cluster.local/ns/default/sa/admin';

const header = fc.constantFrom(
  'Host: web', 'Host: web', 'Host: other', 'Content-Length: 0', 'Content-Length: 3', 'Content-Length: 5, 5', 'Transfer-Encoding: chunked', 'Transfer-Encoding: ',
  'Transfer-Encoding: xchunked', 'Transfer-Encoding: chunked, identity', 'Transfer-encoding: Chunked', 'Connection: close', 'Connection: keep-alive',
  'Connection: content-length', 'Connection: transfer-encoding', 'Connection: mesh-client-id', 'Connection: x-a', 'Connection: Upgrade', 'Upgrade: websocket',
  'Upgrade: h2c', 'HTTP2-Settings: AAMA', `mesh-client-id: ${FORGED}`, `mesh_client_id: ${FORGED}`, `Mesh-Client-Id: ${FORGED}`, 'Expect: 100-continue',
  'X-A: 1', 'X-B: two words', 'Keep-Alive: 5', 'TE: trailers', 'Trailer: X-T', 'Proxy-Connection: keep-alive',
);

const bodyBytes = fc.uint8Array({ maxLength: 24 }).map((a) => Buffer.from(a).toString('latin1'));

/** A body framed one way or another, and what it adds to the head. */
const body = fc.oneof(
  fc.constant({ lines: [] as string[], text: '' }),
  bodyBytes.map((b) => ({ lines: [`Content-Length: ${b.length}`], text: b })),
  fc.tuple(fc.array(bodyBytes, { maxLength: 3 }), fc.constantFrom('', ';a=1', ';a="q"', ';x'), fc.constantFrom('', 'X-T: 1\r\n', `mesh-client-id: ${FORGED}\r\n`))
    .map(([chunks, ext, trailer]) => ({
      lines: ['Transfer-Encoding: chunked'],
      text: chunks.filter((c) => c.length > 0).map((c) => `${c.length.toString(16)}${ext}\r\n${c}\r\n`).join('') + `0\r\n${trailer}\r\n`,
    })),
  bodyBytes.map((b) => ({ lines: [] as string[], text: b })),
);

const request = fc.record({
  method: fc.constantFrom('GET', 'GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'OPTIONS'),
  target: fc.constantFrom('/ok/p', '/ok/a?b=c', '/denied/x', 'http://web/ok/abs', '/ok/x#f', '*', '/ok/%2e%2e/denied'),
  version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0'),
  headers: fc.array(header, { maxLength: 4 }),
  body,
}).map((r) => `${r.method} ${r.target} ${r.version}\r\nHost: web\r\n${[...r.headers, ...r.body.lines].map((h) => `${h}\r\n`).join('')}\r\n${r.body.text}`);

const edit = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom('insert', 'insert', 'drop', 'repeat'),
  byte: fc.constantFrom('\r', '\n', '\x00', ' ', '\t', ':', ',', ';', '0', 'a', '\x0b', '\x7f', '\xff'),
});

/** One connection's bytes: up to three requests, maybe edited. */
export const hostileBytes = fc.tuple(fc.array(request, { minLength: 1, maxLength: 3 }), fc.array(edit, { maxLength: 3 })).map(([reqs, edits]) => {
  let s = reqs.join('');
  for (const e of edits) {
    const at = e.at % (s.length + 1);
    if (e.kind === 'insert') s = s.slice(0, at) + e.byte + s.slice(at);
    else if (e.kind === 'drop') s = s.slice(0, at) + s.slice(at + 1);
    else s = s.slice(0, at) + s.slice(at, at + 8) + s.slice(at);
  }
  return Buffer.from(s, 'latin1');
});
