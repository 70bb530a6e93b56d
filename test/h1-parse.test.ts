// The proxy's own HTTP/1.1 parsing: what it must refuse (a message the next hop could read
// differently) and how bodies are framed, whatever way the bytes are split across reads.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BodyDecoder, chunkFrame, headEnd, parseRequestHead, parseResponseHead, ParseError, type Head } from '../src/proxy/wire/h1-parse.js';
import { forwardHeaders, requestHeaders, tunnels } from '../src/proxy/wire/h1-headers.js';
import { STATUS_TEXT } from '../src/proxy/wire/status-text.js';

function req(text: string): Head {
  const buf = Buffer.from(text, 'latin1');
  const end = headEnd(buf);
  assert.ok(end >= 0, 'test message has no head end');
  return parseRequestHead(buf, end);
}

function refused(text: string, status = 400): void {
  assert.throws(() => req(text), (err: unknown) => err instanceof ParseError && err.status === status, JSON.stringify(text));
}

/** Feeds `bytes` to a decoder in the given split sizes; returns the body and whether it ended. */
function decode(h: Head, bytes: Buffer, splits: number[]): { body: Buffer; ended: boolean; rest: number } {
  const d = new BodyDecoder();
  d.start(h, false);
  const parts: Buffer[] = [];
  let ended = false;
  const t = { onBody: (c: Buffer) => parts.push(Buffer.from(c)), onBodyEnd: () => (ended = true) };
  let at = 0;
  let consumed = 0;
  for (const n of [...splits, bytes.length]) {
    const piece = bytes.subarray(at, Math.min(bytes.length, at + Math.max(1, n)));
    if (piece.length === 0) break;
    at += piece.length;
    consumed += d.feed(piece, 0, t);
    if (ended) break;
  }
  return { body: Buffer.concat(parts), ended, rest: bytes.length - consumed };
}

describe('request heads', () => {
  it('reads method, target, version and the framing headers', () => {
    const h = req('POST /a?b=1 HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: 5\r\nX-Y:  padded \t\r\n\r\n');
    assert.equal(h.method, 'POST');
    assert.equal(h.url, '/a?b=1');
    assert.equal(h.minor, 1);
    assert.equal(h.host, 'reviews:9080');
    assert.equal(h.contentLength, 5);
    assert.deepEqual(h.raw, ['Host', 'reviews:9080', 'Content-Length', '5', 'X-Y', 'padded']);
  });

  it('counts Host headers and reads Connection tokens', () => {
    const h = req('GET / HTTP/1.0\r\nhost: a\r\nHOST: b\r\nConnection: Keep-Alive, Upgrade\r\nUpgrade: websocket\r\n\r\n');
    assert.equal(h.hosts, 2);
    assert.equal(h.host, 'a');
    assert.equal(h.minor, 0);
    assert.ok(h.connKeepAlive && h.connUpgrade && h.upgrades === 1 && h.upgradeTo === 'websocket' && !h.connClose);
  });

  it('refuses what Node refuses and what a smuggler relies on', () => {
    refused('GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n');
    refused('GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n');
    refused('GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n');
    refused('GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n');
    refused('GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n');
    refused('GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n');
    refused('GET / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n');
    refused('GET / HTTP/1.1\r\nHost : a\r\n\r\n');
    refused('GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n');
    refused('GET / HTTP/1.1\nHost: a\r\n\r\n');
    refused('GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n');
    refused('GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n');
    refused('GET / HTTP/1.1\r\nno colon\r\n\r\n');
    refused('GET  / HTTP/1.1\r\n\r\n');
    refused('GET /\x7f HTTP/1.1\r\n\r\n');
    refused('G(T / HTTP/1.1\r\n\r\n');
    refused('GET / HTTP/1.1 extra\r\n\r\n');
    refused('GET / HTTP/2.0\r\n\r\n', 505);
    refused('GET / HTTQ/1.1\r\n\r\n');
  });

  it('takes the registered methods Node reads, and refuses any other token with 501 (Envoy refuses custom methods too)', () => {
    for (const m of ['GET', 'PURGE', 'PROPFIND', 'M-SEARCH', 'QUERY']) assert.equal(req(`${m} / HTTP/1.1\r\nHost: a\r\n\r\n`).method, m);
    for (const m of ['PTIONS', 'get', 'GPOST', 'XX_IN']) refused(`${m} / HTTP/1.1\r\nHost: a\r\n\r\n`, 501);
  });
});

describe('framing, routing and identity headers', () => {
  it('refuses a Connection header naming a framing, routing or identity header (they are never hop-by-hop)', () => {
    for (const named of ['content-length', 'Content-Length', 'transfer-encoding', 'host', 'mesh-client-id', 'Mesh_Client_Id', 'mesh_client-id', 'close, content-length']) {
      refused(`POST / HTTP/1.1\r\nHost: a\r\nConnection: ${named}\r\nContent-Length: 3\r\n\r\n`);
      refused(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: keep-alive\r\nConnection: ${named}\r\n\r\n`);
    }
    const buf = Buffer.from('HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 3\r\n\r\n', 'latin1');
    assert.throws(() => parseResponseHead(buf, headEnd(buf)), ParseError);
    assert.equal(req('GET / HTTP/1.1\r\nHost: a\r\nConnection: x-custom, upgrade, close\r\n\r\n').connClose, true);
  });

  it('refuses any Transfer-Encoding that is not exactly chunked: empty, whitespace, lists, parameters, on HTTP/1.0', () => {
    for (const te of ['', ' ', '\t', ' \t ', ',', 'chunked,', ', chunked', 'chunked, ', 'chunked;x=1', 'xchunked', 'chunked\x0b', 'gzip, chunked', 'identity', '"chunked"']) {
      refused(`POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ${te}\r\nContent-Length: 3\r\n\r\n`);
      refused(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: ${te}\r\n\r\n`);
      refused(`POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ${te}\r\n\r\n`);
    }
    refused('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: \r\n\r\n');
    refused('POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (const te of ['chunked', 'Chunked', ' CHUNKED\t']) assert.ok(req(`POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ${te}\r\n\r\n`).chunked);
  });

  it('refuses a response whose Transfer-Encoding is empty or puts chunked anywhere but last', () => {
    for (const te of ['', ' ', 'chunked, gzip', 'chunked, chunked', 'gzip,,chunked']) {
      const buf = Buffer.from(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${te}\r\nContent-Length: 3\r\n\r\n`, 'latin1');
      assert.throws(() => parseResponseHead(buf, headEnd(buf)), ParseError, JSON.stringify(te));
    }
    const buf = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 'latin1');
    assert.ok(parseResponseHead(buf, headEnd(buf)).chunked);
  });

  it('refuses a request target with a fragment or a byte that is not visible ASCII', () => {
    refused('GET /a\xe9 HTTP/1.1\r\nHost: a\r\n\r\n');
    refused('GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n');
    refused('GET http://a/#x HTTP/1.1\r\nHost: a\r\n\r\n');
  });
});

describe('onward headers', () => {
  const onward = (text: string, identity: string | null = null, authority = 'a') => {
    const h = req(text);
    return requestHeaders({ rawHeaders: h.raw, hosts: h.hosts, contentLength: h.contentLength, chunked: h.chunked }, authority, identity);
  };
  const framing = (raw: string[]) => raw.filter((_, i) => i % 2 === 0 && /^(content-length|transfer-encoding)$/i.test(raw[i]!));

  it('carry exactly one framing header, the one the body was read by', () => {
    assert.deepEqual(onward('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n'), ['Host', 'a', 'content-length', '7']);
    assert.deepEqual(onward('POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: CHUNKED\r\n\r\n'), ['Host', 'a', 'transfer-encoding', 'chunked']);
    assert.deepEqual(onward('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), ['Host', 'a']);
    fc.assert(fc.property(fc.constantFrom('Content-Length: 5', 'Transfer-Encoding: chunked', ''), fc.array(fc.constantFrom('X-A: 1', 'Keep-Alive: 5', 'TE: trailers', 'Connection: x-a'), { maxLength: 4 }), (frame, rest) => {
      const lines = [...rest, ...(frame ? [frame] : [])];
      const out = framing(onward(`POST / HTTP/1.1\r\nHost: a\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`));
      assert.equal(out.length, frame ? 1 : 0);
    }), { numRuns: 100 });
  });

  it('drop the identity header in every spelling and carry only the verified one', () => {
    const out = onward('GET / HTTP/1.1\r\nHost: a\r\nmesh-client-id: x\r\nMESH_CLIENT_ID: y\r\nMesh_client-Id: z\r\nmesh-client-idx: keep\r\n\r\n', 'spiffe://td/ns/n/sa/s');
    assert.deepEqual(out, ['Host', 'a', 'mesh-client-idx', 'keep', 'mesh-client-id', 'spiffe://td/ns/n/sa/s']);
  });

  it('add the Host an absolute-form request named only in its URI', () => {
    assert.deepEqual(onward('GET http://web:8080/x HTTP/1.0\r\n\r\n', null, 'web:8080'), ['host', 'web:8080']);
  });

  it('pass on only upgrades to a protocol that is not HTTP, on a GET over HTTP/1.1', () => {
    const up = (text: string) => tunnels(req(text));
    assert.ok(up('GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n'));
    assert.ok(up('GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n'));
    for (const proto of ['h2c', 'H2C', 'h2', 'HTTP/2.0', 'http/1.1', 'websocket, h2c', 'h2c, websocket', '']) {
      assert.ok(!up(`GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: ${proto}\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n`), proto);
    }
    assert.ok(!up('GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nUpgrade: websocket\r\n\r\n'));
    assert.ok(!up('POST / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'));
    assert.ok(!up('GET / HTTP/1.0\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'));
    assert.ok(!up('GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n'));
    const h = req('GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMA\r\n\r\n');
    assert.deepEqual(forwardHeaders(h.raw, false), ['Host', 'a'], 'an upgrade not made leaves no trace');
  });
});

describe('response heads', () => {
  it('reads status, reason and framing; Transfer-Encoding wins over Content-Length', () => {
    const buf = Buffer.from('HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n', 'latin1');
    const h = parseResponseHead(buf, headEnd(buf));
    assert.equal(h.status, 404);
    assert.equal(h.reason, 'Not Found');
    assert.ok(h.chunked);
    assert.equal(h.contentLength, -1);
  });

  it('refuses a garbled status line as a bad gateway', () => {
    const buf = Buffer.from('HTTP/1.1 20 OK\r\n\r\n', 'latin1');
    assert.throws(() => parseResponseHead(buf, headEnd(buf)), (e: unknown) => e instanceof ParseError && e.status === 502);
  });
});

describe('bodies', () => {
  const chunked = req('POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n');
  const sized = req('POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n');

  it('decodes chunked bodies however the bytes are split, and stops at their end', () => {
    fc.assert(fc.property(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { maxLength: 6 }),
      fc.array(fc.integer({ min: 1, max: 9 }), { maxLength: 30 }),
      (chunks, splits) => {
        const wire = Buffer.concat([...chunks.map((c) => chunkFrame(Buffer.from(c))), Buffer.from('0;ext=1\r\nTrailer: x\r\n\r\nNEXT', 'latin1')]);
        const r = decode(chunked, wire, splits);
        assert.ok(r.ended);
        assert.deepEqual(r.body, Buffer.concat(chunks.map((c) => Buffer.from(c))));
        assert.equal(r.rest, 4, 'the next message is left for the next parse');
      },
    ), { numRuns: 300 });
  });

  it('ends a length-delimited body after exactly its length', () => {
    const r = decode(sized, Buffer.from('0123456789GET / HTTP/1.1'), [3, 4]);
    assert.ok(r.ended);
    assert.equal(r.body.toString(), '0123456789');
  });

  it('reads chunk extensions by their grammar, and trailers as fields that never frame, route or identify', () => {
    for (const ext of [';a', ';a=b', ';a="b c"', ';a="x\\"y"', ';a;b=1']) {
      assert.ok(decode(chunked, Buffer.from(`5${ext}\r\nhello\r\n0\r\n\r\n`, 'latin1'), []).ended, ext);
    }
    for (const wire of ['5 ;a\r\nhello\r\n0\r\n\r\n', '5;a="b\r\nhello\r\n0\r\n\r\n', '5;\r\nhello\r\n0\r\n\r\n', '5;a=b c\r\nhello\r\n0\r\n\r\n', '5;a=\x01\r\nhello\r\n0\r\n\r\n',
      '0\r\nContent-Length: 4\r\n\r\n', '0\r\nTransfer-Encoding: chunked\r\n\r\n', '0\r\nmesh_client_id: x\r\n\r\n', '0\r\n\rGET / HTTP/1.1\r\n\r\n',
      '0\r\nno colon\r\n\r\n', '0\r\n folded: x\r\n\r\n']) {
      assert.throws(() => decode(chunked, Buffer.from(wire, 'latin1'), []), ParseError, JSON.stringify(wire));
    }
    assert.ok(decode(chunked, Buffer.from('0\r\nX-Checksum: abc\r\n\r\n', 'latin1'), []).ended);
  });

  it('refuses malformed chunk framing', () => {
    for (const wire of ['zz\r\n', '5\nhello\r\n', '5\r\nhelloXY', '1'.repeat(13) + '\r\n']) {
      assert.throws(() => decode(chunked, Buffer.from(wire, 'latin1'), []), ParseError, JSON.stringify(wire));
    }
  });
});

describe('status lines', () => {
  it('carry the reason phrases Node\'s http.STATUS_CODES has, for every code it knows', async () => {
    const { STATUS_CODES } = await import('node:http');
    for (const [code, text] of Object.entries(STATUS_CODES)) assert.equal(STATUS_TEXT[Number(code)], text, code);
    assert.equal(Object.keys(STATUS_TEXT).length, Object.keys(STATUS_CODES).length);
  });
});
