// The hostile-input corpus: request smuggling as published (PortSwigger's CL.TE / TE.CL / TE.TE obfuscations, RFC 9112
// 6.3 and 11.2, the HTTP Garden and "HTTP Desync Attacks" variants), header-name and -value tricks, chunk abuse,
// control-character injection, request-target forms, identity spoofing and upgrades, each smuggling a second request
// the client did not send as one. Every case is data: a name, its bytes (latin1) and, for the classes that must be
// refused outright, `refuse`.

export interface Case {
  name: string;
  bytes: string;
  /** Must be answered with a 4xx and reach the app not at all. */
  refuse?: boolean;
}

const FORGED = 'spiffe://cluster.local/ns/default/sa/admin';
/** What a smuggler hides in a body: a request to a denied path under a forged identity, or a plain second request. */
const SMUGGLED = [
  `GET /denied/smuggled HTTP/1.1\r\nHost: web\r\nmesh-client-id: ${FORGED}\r\n\r\n`,
  `POST /ok/smuggled HTTP/1.1\r\nHost: web\r\nmesh_client_id: ${FORGED}\r\nContent-Length: 10\r\n\r\nx=`,
  'GPOST / HTTP/1.1\r\n\r\n',
];

const chunk = (s: string) => `${s.length.toString(16)}\r\n${s}\r\n`;
let n = 0;
const path = () => `/ok/c${++n}`;
const head = (method: string, lines: string[], target = path(), version = 'HTTP/1.1') => `${method} ${target} ${version}\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`;

/** Transfer-Encoding spellings from the smuggling papers: each is refused unless it is exactly chunked. */
const TE_OBFUSCATIONS = [
  'Transfer-Encoding: xchunked', 'Transfer-Encoding : chunked', 'Transfer-Encoding:\tchunked', ' Transfer-Encoding: chunked',
  'X: X\nTransfer-Encoding: chunked', 'Transfer-Encoding\n: chunked', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: x',
  'Transfer-Encoding: identity\r\nTransfer-Encoding: chunked', 'Transfer-Encoding: "chunked"', 'Transfer-Encoding: chunked, identity',
  'Transfer-Encoding: identity, chunked', 'Transfer-Encoding: chunked;', 'Transfer-Encoding: chunked;q=1', 'Transfer-Encoding: CHUNKED',
  'Transfer-Encoding: \x0bchunked', 'Transfer-Encoding: chunked\x00', 'Transfer-Encoding: chu\x00nked', 'Transfer_Encoding: chunked',
  'Transfer-Encoding: \r\n chunked', 'Transfer-Encoding:', 'Transfer-Encoding: ', 'Transfer-Encoding: \t ', 'Transfer-Encoding: ,',
  'Transfer-Encoding: chunked,', 'Transfer-Encoding: , chunked', 'Transfer-Encoding: gzip, chunked', 'Transfer-Encoding: chunk',
  'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked', 'Transfer-Encoding: chunked\r', 'Transfer-Encoding:chunked',
  'Transfer-Encoding: chunked ', 'transfer-encoding: chunked', 'TRANSFER-ENCODING: chunked', 'Transfer-Encoding: \u00a0chunked',
  'Transfer-Encoding: chunked\u00a0', 'Transfer-Encoding\x00: chunked', 'Transfer-Encoding: chunked\r\nContent-Length: 0',
];

const CL_TRICKS = [
  'Content-Length: 5\r\nContent-Length: 5', 'Content-Length: 5\r\nContent-Length: 6', 'Content-Length: 5, 5', 'Content-Length: +5',
  'Content-Length: 0x5', 'Content-Length: 5 5', 'Content-Length: -5', 'Content-Length : 5', 'Content_Length: 5', 'Content-Length: 5.0',
  'Content-Length: 99999999999999999999', 'Content-Length:\t5', 'Content-Length: 05', ' Content-Length: 5', 'Content-Length: 5\x00',
  'Content-Length: 1e1', 'Content-Length: \x0b5',
];

export function corpus(): Case[] {
  const cases: Case[] = [];
  const add = (name: string, bytes: string, refuse?: boolean) => cases.push({ name, bytes, ...(refuse ? { refuse } : {}) });

  for (const [i, smuggled] of SMUGGLED.entries()) {
    // CL.TE and TE.CL: a front end reading one framing and a back end the other disagree on where the body ends.
    for (const te of TE_OBFUSCATIONS) {
      const clte = `${chunk('abc')}0\r\n\r\n${smuggled}`;
      add(`CL.TE ${JSON.stringify(te)} #${i}`, head('POST', ['Host: web', `Content-Length: ${clte.length}`, te]) + clte);
      const tecl = `${chunk(smuggled)}0\r\n\r\n`;
      add(`TE.CL ${JSON.stringify(te)} #${i}`, head('POST', ['Host: web', te, 'Content-Length: 4']) + tecl);
      add(`TE only ${JSON.stringify(te)} #${i}`, head('POST', ['Host: web', te]) + tecl + smuggled);
    }
    for (const cl of CL_TRICKS) add(`CL ${JSON.stringify(cl)} #${i}`, head('POST', ['Host: web', cl]) + `hello${smuggled}`);
    // Framing and identity headers named in Connection: stripping them as hop-by-hop turns the body into a request.
    for (const named of ['content-length', 'Content-Length', 'transfer-encoding', 'close, content-length', 'host', 'mesh-client-id', 'mesh_client_id', 'Mesh-Client-Id', 'keep-alive, Transfer-Encoding']) {
      add(`Connection: ${named} with Content-Length #${i}`, head('POST', ['Host: web', `Connection: ${named}`, `Content-Length: ${smuggled.length}`]) + smuggled, true);
      add(`Connection: ${named} with chunked #${i}`, head('POST', ['Host: web', `Connection: ${named}`, 'Transfer-Encoding: chunked']) + `${chunk(smuggled)}0\r\n\r\n`, true);
    }
    // Empty or whitespace Transfer-Encoding beside Content-Length, the body sent in pieces a next hop would misread.
    for (const te of ['', ' ', '\t', ' \t ']) {
      add(`empty TE ${JSON.stringify(te)} beside Content-Length #${i}`, head('POST', ['Host: web', `Transfer-Encoding:${te}`, `Content-Length: ${smuggled.length + 5}`]) + `0\r\n\r\n${smuggled}`, true);
      add(`Content-Length then empty TE ${JSON.stringify(te)} #${i}`, head('POST', ['Host: web', `Content-Length: ${smuggled.length}`, `Transfer-Encoding:${te}`]) + smuggled, true);
    }
    // HTTP/1.0 with Transfer-Encoding: a 1.0 hop reads no chunked framing.
    add(`HTTP/1.0 with chunked #${i}`, head('POST', ['Host: web', 'Transfer-Encoding: chunked'], path(), 'HTTP/1.0') + `${chunk(smuggled)}0\r\n\r\n`, true);
    add(`HTTP/1.0 keep-alive with chunked and Content-Length #${i}`, head('POST', ['Host: web', 'Connection: keep-alive', 'Content-Length: 3', 'Transfer-Encoding: chunked'], path(), 'HTTP/1.0') + `abc${smuggled}`, true);
    // Chunk-size and chunk-extension abuse.
    for (const body of [
      `ffffffffffffffff1\r\na\r\n0\r\n\r\n`, `0x5\r\nhello\r\n0\r\n\r\n`, `5 \r\nhello\r\n0\r\n\r\n`, ` 5\r\nhello\r\n0\r\n\r\n`, `-5\r\nhello\r\n0\r\n\r\n`,
      `5;ext=1\r\nhello\r\n0\r\n\r\n`, `5;a="b\r\nhello\r\n0\r\n\r\n`, `5;\x00\r\nhello\r\n0\r\n\r\n`, `5\nhello\r\n0\r\n\r\n`, `5\r\nhello\n0\r\n\r\n`,
      `5\r\nhelloXX0\r\n\r\n`, `5\r\nhello world\r\n0\r\n\r\n`, `000000000000005\r\nhello\r\n0\r\n\r\n`, `5\r\nhello\r\n0\r\nmesh-client-id: ${FORGED}\r\n\r\n`,
      `5\r\nhello\r\n0\r\nContent-Length: 40\r\n\r\n`, `5\r\nhello\r\n0\r\n\r`, `5\r\nhello\r\n0\n\n`, `5\r\nhello\r\n0\r\nX: y\n\r\n`, `${'1'.repeat(5000)}\r\n`,
      `2;${'x'.repeat(5000)}\r\nhi\r\n0\r\n\r\n`, `5\r\nhello\r\n0;x\r\n\r\n`, `5\r\nhe`, `0\r\n\r\n`,
    ]) add(`chunked body ${JSON.stringify(body.slice(0, 40))} #${i}`, head('POST', ['Host: web', 'Transfer-Encoding: chunked']) + body + smuggled);
  }

  // Identity spoofing: a client's identity header never reaches the app, in any spelling; only the proxy's does.
  for (const h of ['mesh-client-id', 'Mesh-Client-Id', 'MESH-CLIENT-ID', 'mesh_client_id', 'Mesh_Client_Id', 'mesh-client_id', 'mesh_client-id', 'MESH_CLIENT_ID']) {
    add(`identity header ${h}`, head('GET', ['Host: web', `${h}: ${FORGED}`]));
    add(`identity header ${h} twice`, head('GET', ['Host: web', `${h}: ${FORGED}`, `${h}: ${FORGED}`]));
    add(`identity header ${h} with a body`, head('POST', ['Host: web', `${h}: ${FORGED}`, 'Content-Length: 2']) + 'hi');
  }
  for (const l of [` mesh-client-id: ${FORGED}`, `mesh-client-id : ${FORGED}`, `mesh-client-id\t: ${FORGED}`, `X: a\r\n mesh-client-id: ${FORGED}`, `X: a\nmesh-client-id: ${FORGED}`, `X: a\rmesh-client-id: ${FORGED}`, `X: a\x00mesh-client-id: ${FORGED}`]) {
    add(`identity header obfuscated ${JSON.stringify(l.slice(0, 24))}`, head('GET', ['Host: web', l]));
  }

  // Control characters and whitespace in the request line and fields.
  for (const line of ['GET /ok/x\x00y HTTP/1.1', 'GET /ok/x\ry HTTP/1.1', 'GET /ok/x\ny HTTP/1.1', 'GET  /ok/x HTTP/1.1', 'GET /ok/x  HTTP/1.1', 'GET\t/ok/x HTTP/1.1',
    'GET /ok/x HTTP/1.1 ', 'GET /ok/x http/1.1', 'GET /ok/x HTTP/1.2', 'GET /ok/x HTTP/2.0', 'GET /ok/x HTTP/1.10', 'GET /ok/x', ' GET /ok/x HTTP/1.1', 'G\x00ET /ok/x HTTP/1.1',
    'GET /ok/x\x7f HTTP/1.1', 'GET /ok/\u00e9 HTTP/1.1', 'PRI * HTTP/2.0', 'get /ok/x HTTP/1.1', 'GET /ok/x HTTP/1.1\x00', 'PTIONS /ok/x HTTP/1.1']) {
    add(`request line ${JSON.stringify(line)}`, `${line}\r\nHost: web\r\n\r\n`);
  }
  for (const f of ['X: a\x00b', 'X: a\rb', 'X\x00: a', 'X : a', 'X\t: a', 'X a', ': a', 'X: a\r\n\tfolded', '\x00X: a', 'X:\x01a', 'X-\u00e9: a', 'X: \u00e9', 'Host: web\r\nX: y\n']) {
    add(`field ${JSON.stringify(f)}`, head('GET', ['Host: web', f]) + SMUGGLED[0]);
  }
  add('bare LF line endings', `GET /ok/lf HTTP/1.1\nHost: web\n\n${SMUGGLED[0]}`);
  add('bare CR line endings', `GET /ok/cr HTTP/1.1\rHost: web\r\r${SMUGGLED[0]}`);
  add('head over 16 KiB', head('GET', ['Host: web', `X: ${'a'.repeat(17_000)}`]));
  add('many fields', head('GET', ['Host: web', ...Array.from({ length: 300 }, (_, k) => `X-${k}: ${k}`)]));

  // Request targets: absolute-form against Host, asterisk-form, fragments, authority-form, userinfo.
  for (const [target, host] of [
    ['http://web/ok/abs', 'web'], ['http://web/ok/abs', 'other'], ['http://web:80/ok/abs', 'web'], ['http://other/ok/abs', 'web'], ['HTTP://WEB/ok/abs', 'web'],
    ['https://web/ok/abs', 'web'], ['http://web@other/ok/abs', 'web'], ['http://web/ok/abs', null], ['http:/web/ok/abs', 'web'], ['*', 'web'], ['/ok/frag#x', 'web'],
    ['/ok/frag#/../../denied', 'web'], ['http://web/ok/a#b', 'web'], ['web:80', 'web'], ['//denied/x', 'web'], ['/ok/../denied/x', 'web'], ['/ok/%2e%2e/denied/x', 'web'],
    ['/ok%2fx', 'web'], ['/ok/x?y#z', 'web'], ['ok/x', 'web'], ['/ok/x', ''], ['/ok/x', 'web, other'], ['/ok/x', 'web other'], ['/ok/x', 'web@other'],
  ] as [string, string | null][]) {
    add(`target ${target} Host ${JSON.stringify(host)}`, `GET ${target} HTTP/1.1\r\n${host === null ? '' : `Host: ${host}\r\n`}\r\n`);
  }
  add('OPTIONS *', 'OPTIONS * HTTP/1.1\r\nHost: web\r\n\r\n');
  add('CONNECT', 'CONNECT web:80 HTTP/1.1\r\nHost: web:80\r\n\r\n');
  add('two Host headers', head('GET', ['Host: web', 'Host: other']));
  add('two Host headers, the same', head('GET', ['Host: web', 'Host: web']));
  add('no Host on HTTP/1.1', head('GET', []));
  add('no Host on HTTP/1.0', head('GET', [], path(), 'HTTP/1.0'));

  // Upgrades: h2c is never made (the request is served as HTTP/1.1, what follows is the next request); WebSocket only
  // where policy allows the path, never with a body.
  for (const p of ['/ok/up', '/denied/up']) {
    add(`h2c upgrade ${p}`, head('GET', ['Host: web', 'Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA'], p) + 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    add(`h2c upgrade ${p} then a request`, head('GET', ['Host: web', 'Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMA'], p) + SMUGGLED[0]);
    add(`h2c upgrade on POST ${p}`, head('POST', ['Host: web', 'Connection: Upgrade', 'Upgrade: h2c', 'Content-Length: 3'], p) + 'abc' + SMUGGLED[0]);
    add(`websocket ${p}`, head('GET', ['Host: web', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='], p) + SMUGGLED[0]);
    add(`websocket ${p} with a forged identity`, head('GET', ['Host: web', 'Connection: Upgrade', 'Upgrade: websocket', `mesh-client-id: ${FORGED}`], p));
    add(`websocket ${p} with a body`, head('GET', ['Host: web', 'Connection: Upgrade', 'Upgrade: websocket', `Content-Length: ${SMUGGLED[0]!.length}`], p) + SMUGGLED[0], true);
    add(`websocket and h2c ${p}`, head('GET', ['Host: web', 'Connection: Upgrade', 'Upgrade: websocket, h2c'], p) + SMUGGLED[0]);
    add(`Upgrade without Connection ${p}`, head('GET', ['Host: web', 'Upgrade: websocket'], p) + SMUGGLED[0]);
    add(`websocket on HTTP/1.0 ${p}`, head('GET', ['Host: web', 'Connection: Upgrade', 'Upgrade: websocket'], p, 'HTTP/1.0'));
    add(`two Upgrade headers ${p}`, head('GET', ['Host: web', 'Connection: Upgrade', 'Upgrade: websocket', 'Upgrade: h2c'], p) + SMUGGLED[0]);
  }

  // Pipelining: requests after an error are never read; requests after a close are never read; good ones in order.
  const ok = () => head('GET', ['Host: web']);
  add('pipelined requests', ok() + ok() + ok());
  add('pipelined after a bad request', ok() + 'GET /ok/x HTTP/1.1\r\nHost: web\r\nX : y\r\n\r\n' + ok());
  add('pipelined after a bad chunk', head('POST', ['Host: web', 'Transfer-Encoding: chunked']) + 'zz\r\n' + ok());
  add('pipelined after Connection: close', head('GET', ['Host: web', 'Connection: close']) + SMUGGLED[0]);
  add('pipelined after a denied request', head('GET', ['Host: web'], '/denied/x') + ok());
  // Found by the property test: a method llhttp does not know, denied, then a request (a Node server refuses the lot).
  add('pipelined after a denied request with an unknown method', head('PTIONS', ['Host: web', 'Content-Length: 2'], '/ok/%2e%2e/denied') + 'Ej' + ok());
  // Answered at once (denied) while its body is still being read, then a malformed request: nothing after it is read.
  add('pipelined after a denied request with a body, then a bad one', head('POST', ['Host: web', 'Transfer-Encoding: chunked'], '/denied/x') + '3\r\nabc\r\n0\r\n\r\n' + 'GET /ok/x HTTP1.1\r\nHost: web\r\n\r\n' + ok());
  // Found by the property test: a request parsed after the 400 that closed the connection reached the app.
  add('pipelined after a denied chunked request and a bad version', 'GET /ok/%2e%2e/denied HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n8;a="q"\r\n\x19\xcd\xb2K\xa0\xcf.7\r\n0\r\nX-T: 1\r\n\r\n'
    + 'GET /ok/x#f HTTP1.1\r\nHost: web\r\n\r\nGET http://web/ok/abs HTTP/1.0\r\nHost: web\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\n');
  add('pipelined after an unknown service, then a bad one', head('GET', ['Host: nosuch'], '/ok/x') + 'GET /ok/x HTTP1.1\r\nHost: web\r\n\r\n' + ok());
  add('pipelined after a refused target', head('GET', ['Host: other'], 'http://web/ok/x') + ok());
  add('pipelined HTTP/1.0 without keep-alive', head('GET', ['Host: web'], path(), 'HTTP/1.0') + ok());
  add('pipelined HTTP/1.0 keep-alive', head('GET', ['Host: web', 'Connection: keep-alive'], path(), 'HTTP/1.0') + ok());
  add('body longer than Content-Length', head('POST', ['Host: web', 'Content-Length: 3']) + 'abcdef' + ok());
  add('Expect: 100-continue', head('POST', ['Host: web', 'Expect: 100-continue', 'Content-Length: 3']) + 'abc');
  add('Expect: 100-continue chunked', head('POST', ['Host: web', 'Expect: 100-continue', 'Transfer-Encoding: chunked']) + '3\r\nabc\r\n0\r\n\r\n');
  add('GET with a body', head('GET', ['Host: web', 'Content-Length: 5']) + 'hello' + ok());
  add('HEAD with a body', head('HEAD', ['Host: web', 'Content-Length: 5']) + 'hello' + ok());
  add('stray CRLF between requests', ok() + '\r\n' + ok());
  add('Proxy-Connection and Keep-Alive', head('GET', ['Host: web', 'Proxy-Connection: keep-alive', 'Keep-Alive: timeout=5', 'TE: trailers', 'Trailer: X']));
  add('Connection naming an end-to-end header', head('GET', ['Host: web', 'Connection: x-secret', 'X-Secret: 1', 'X-Kept: 2']));
  return cases;
}
