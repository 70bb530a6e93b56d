// The proxy's own HTTP/1.1 parsing: what it must refuse (a message the next hop could read
// differently) and how bodies are framed, whatever way the bytes are split across reads.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BodyDecoder, chunkFrame, headEnd, parseRequestHead, parseResponseHead, ParseError, type Head } from '../src/proxy/h1-parse.js';

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
    assert.ok(h.connKeepAlive && h.connUpgrade && h.upgrade && !h.connClose);
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

  it('refuses malformed chunk framing', () => {
    for (const wire of ['zz\r\n', '5\nhello\r\n', '5\r\nhelloXY', '1'.repeat(13) + '\r\n']) {
      assert.throws(() => decode(chunked, Buffer.from(wire, 'latin1'), []), ParseError, JSON.stringify(wire));
    }
  });
});
