// mesh/1 framing: whatever way a connection's bytes are split across reads, every frame comes out
// whole, in order, and a DATA frame's payload comes out as its bytes with END on the last piece.
// And sessions: one whose peer went silent fails its streams; one whose peer answers pings lives.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import fc from 'fast-check';
import { ALPN, FrameReader, MAX_HEAD_FRAME } from '../src/proxy/wire/mux-frames.js';
import { serveMux } from '../src/proxy/wire/mux-server.js';
import { SessionPool } from '../src/proxy/wire/mux-client.js';
import { createIssuer, createTrustAnchor, generateKey, Issuer } from '../src/identity/ca.js';
import { ParseError } from '../src/proxy/wire/h1-parse.js';
import type { EventEmitter } from 'node:events';
import type { Upstream } from '../src/proxy/wire/h1-client.js';
import { frame, makeCa, muxPeer, idOf } from './support/mux-bed.js';

interface Frame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

function encode(f: Frame): Buffer {
  const h = Buffer.alloc(10);
  h[0] = f.type;
  h[1] = f.flags;
  h.writeUInt32BE(f.id, 2);
  h.writeUInt32BE(f.payload.length, 6);
  return Buffer.concat([h, f.payload]);
}

/** Payload lengths each frame type allows: heads and data up to 300 here, control frames their own. */
const MAX_LEN: Record<number, number> = { 1: 300, 2: 300, 3: 256, 4: 4, 5: 8 };
const frameArb = fc.constantFrom(1, 2, 3, 4, 5).chain((type) => fc.record({
  type: fc.constant(type),
  flags: fc.constantFrom(0, 1),
  id: fc.integer({ min: 1, max: 99 }),
  payload: fc.uint8Array({ maxLength: MAX_LEN[type]! }).map((a) => Buffer.from(a)),
})).map((f): Frame => ({ ...f }));

describe('mesh/1 frame reader', () => {
  it('gives back every frame however the bytes are split', () => {
    fc.assert(fc.property(fc.array(frameArb, { maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 60 }), (frames, splits) => {
      const got: Frame[] = [];
      let cur: Frame | null = null;
      const r = new FrameReader({
        onFrame(type, flags, id, payload) {
          if (type !== 2) {
            assert.equal(cur, null, 'a frame came out in the middle of a DATA payload');
            got.push({ type, flags, id, payload: Buffer.from(payload) });
            return;
          }
          const want = frames[got.length]!;
          cur ??= { type, flags: 0, id, payload: Buffer.alloc(0) };
          assert.equal(id, want.id);
          assert.equal(cur.flags & 1, 0, 'END before the last piece');
          cur.payload = Buffer.concat([cur.payload, payload]);
          cur.flags = flags;
          if (cur.payload.length === want.payload.length) {
            got.push(cur);
            cur = null;
          } else assert.equal(flags & 1, 0, 'END on a piece that is not the last');
        },
      });
      const wire = Buffer.concat(frames.map(encode));
      let at = 0;
      for (const n of [...splits, wire.length]) {
        if (at >= wire.length) break;
        r.push(wire.subarray(at, at + n));
        at += n;
      }
      assert.equal(cur, null);
      assert.deepEqual(got, frames);
    }), { numRuns: 500 });
  });

  // Each limit is checked on the frame's 10-byte header, before any of its payload is held.
  for (const [what, type, len] of [['data', 2, 2 ** 20 + 1], ['a head', 1, MAX_HEAD_FRAME + 1], ['a ping', 5, 9], ['a window update', 4, 5], ['a reset', 3, 257], ['settings', 6, 65]] as const) {
    it(`refuses ${what} frame longer than its limit before reading it`, () => {
      const r = new FrameReader({ onFrame: () => assert.fail('no frame expected') });
      const h = Buffer.alloc(10);
      h[0] = type;
      h.writeUInt32BE(1, 2);
      h.writeUInt32BE(len, 6);
      assert.throws(() => r.push(h), ParseError);
    });
  }
});


describe('mesh/1 session liveness', () => {
  const TD = 'cluster.local';
  let server: tls.Server;
  let port = 0;
  let ca = '';
  /** What the test peer does with a connection: nothing at all, or mesh/1 with a handler that never answers. */
  let mode: 'silent' | 'mux' = 'silent';
  const open = new Set<net.Socket>();

  before(async () => {
    const anchor = await createTrustAnchor(TD);
    const issuer = await createIssuer(TD, anchor);
    const key = await generateKey();
    const leaf = new Issuer(issuer).issueLeaf({ uri: `spiffe://${TD}/ns/default/sa/peer`, publicKeyPem: key.publicKeyPem, lifetimeMs: 3600_000 });
    ca = anchor.certPem;
    server = tls.createServer({ cert: leaf + issuer.certPem, key: key.keyPem, ALPNProtocols: [ALPN] }, (sock) => {
      open.add(sock);
      sock.on('close', () => open.delete(sock));
      sock.on('error', () => {});
      if (mode === 'mux') serveMux(sock, { request: () => {}, upgrade: (_r, s) => s.destroy() });
      else sock.resume();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });
  after(async () => {
    for (const s of open) s.destroy();
    await new Promise((r) => server.close(r));
  });

  const waitingStream = (pool: SessionPool) => {
    const t = { servername: 'peer', checkServerIdentity: () => undefined, secureContext: tls.createSecureContext({ ca }) };
    const s = pool.request('127.0.0.1', port, t, 'GET', '/slow', ['host', 'peer']);
    const outcome = new Promise<Error>((resolve) => s.once('error', resolve));
    s.end();
    return outcome;
  };

  it('fails the streams of a session whose peer stopped answering, after a ping goes unanswered', { timeout: 10_000 }, async () => {
    mode = 'silent';
    const pool = new SessionPool({ idleMs: 30_000, pingAfterMs: 200, pingTimeoutMs: 300 });
    try {
      const started = Date.now();
      const err = await waitingStream(pool);
      assert.match(err.message, /peer stopped answering/);
      assert.ok(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);
    } finally {
      pool.destroy();
    }
  });

  it('keeps a session whose peer answers pings, however long the response takes', { timeout: 10_000 }, async () => {
    mode = 'mux';
    const pool = new SessionPool({ idleMs: 30_000, pingAfterMs: 200, pingTimeoutMs: 300 });
    try {
      const outcome = waitingStream(pool);
      const first = await Promise.race([outcome, new Promise<null>((r) => setTimeout(() => r(null), 1_500))]);
      assert.equal(first, null, `the stream failed: ${(first as Error | null)?.message}`);
    } finally {
      pool.destroy();
    }
  });
});

/** Writes `size` bytes of `fill` to a stream in 64 KiB chunks, waiting whenever a write says to. */
function sendBody(up: Upstream, size: number, fill: number): void {
  const chunk = Buffer.alloc(64 * 1024, fill);
  let sent = 0;
  const pump = (): void => {
    while (sent < size) {
      sent += chunk.length;
      if (sent >= size) return up.end(chunk);
      if (!up.write(chunk)) return;
    }
  };
  up.source = { resume: pump };
  pump();
}

describe('mesh/1 flow control between two sessions of this version', () => {
  it('moves 8 concurrent 4 MiB bodies each way over one session (16x the connection window), twice: the windows come back whole', { timeout: 30_000 }, async (t) => {
    const ca = await makeCa();
    // The peer echoes each request body back as it reads it.
    const peer = await muxPeer(ca.leaf(idOf('web')), ca.key.keyPem, ca.anchor.certPem, {
      request(req, res) {
        res.writeHead(200, undefined, ['content-type', 'application/octet-stream', 'transfer-encoding', 'chunked']);
        req.pipe({
          write: (c: Buffer) => res.write(Buffer.from(c)),
          end: () => res.end(),
          set source(s: { resume(): void } | null) {
            if (s) res.on('drain', () => s.resume());
          },
        });
      },
      upgrade: (_r, s) => s.destroy(),
    });
    const pool = new SessionPool({ idleMs: 30_000 });
    t.after(async () => {
      pool.destroy();
      await peer.close();
    });
    const tlsOpts = { servername: 'web', checkServerIdentity: () => undefined, secureContext: tls.createSecureContext({ cert: ca.leaf(idOf('client')), key: ca.key.keyPem, ca: ca.anchor.certPem }) };
    const SIZE = 4 * 1024 * 1024;
    const one = (i: number) => new Promise<number>((resolve, reject) => {
      const up = pool.request('127.0.0.1', peer.port, tlsOpts, 'POST', `/${i}`, ['host', 'web', 'transfer-encoding', 'chunked']);
      let got = 0;
      up.on('error', reject);
      up.on('response', (res: EventEmitter) => {
        res.on('data', (c: Buffer) => (got += c.length));
        res.on('end', () => resolve(got));
        res.on('aborted', () => reject(new Error('aborted')));
      });
      sendBody(up, SIZE, i);
    });
    for (let round = 0; round < 2; round++) {
      const got = await Promise.all(Array.from({ length: 8 }, (_, i) => one(i)));
      assert.deepEqual(got, Array(8).fill(SIZE));
    }
  });
});

describe('mesh/1 with a peer of the previous version', () => {
  it('uploads past the connection window to a server that sends no SETTINGS and credits stream windows only', { timeout: 30_000 }, async (t) => {
    const ca = await makeCa();
    // The previous version's server, as far as flow control goes: silent until a request's data
    // comes, a WINDOW per 64 KiB read on that stream, never a frame on stream 0.
    const server = tls.createServer({ cert: ca.leaf(idOf('web')), key: ca.key.keyPem, ca: ca.anchor.certPem, requestCert: true, ALPNProtocols: [ALPN] }, (sock) => {
      const owed = new Map<number, number>();
      const out = (type: number, flags: number, id: number, payload: Buffer) => sock.write(frame(type, flags, id, payload));
      const reader = new FrameReader({
        onFrame(type, flags, id, payload) {
          if (type !== 2) return;
          const n = (owed.get(id) ?? 0) + payload.length;
          owed.set(id, n >= 64 * 1024 ? 0 : n);
          if (n >= 64 * 1024) {
            const w = Buffer.alloc(4);
            w.writeUInt32BE(n);
            out(4, 0, id, w);
          }
          if (flags & 1) {
            out(1, 0, id, Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n', 'latin1'));
            out(2, 1, id, Buffer.from('ok'));
          }
        },
      });
      sock.on('data', (c: Buffer) => reader.push(c));
      sock.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const pool = new SessionPool({ idleMs: 30_000 });
    t.after(async () => {
      pool.destroy();
      await new Promise((r) => server.close(r));
    });
    const port = (server.address() as net.AddressInfo).port;
    const tlsOpts = { servername: 'web', checkServerIdentity: () => undefined, secureContext: tls.createSecureContext({ cert: ca.leaf(idOf('client')), key: ca.key.keyPem, ca: ca.anchor.certPem }) };
    const SIZE = 1024 * 1024;
    const upload = (i: number) => new Promise<number>((resolve, reject) => {
      const up = pool.request('127.0.0.1', port, tlsOpts, 'POST', `/${i}`, ['host', 'web', 'content-length', String(SIZE)]);
      up.on('error', reject);
      up.on('response', (res: EventEmitter & { statusCode: number }) => {
        res.on('data', () => {});
        res.on('end', () => resolve(res.statusCode));
      });
      sendBody(up, SIZE, i);
    });
    // Four at once: 4 MiB, twice the connection window this version would keep to with a peer of its own.
    assert.deepEqual(await Promise.all([0, 1, 2, 3].map(upload)), [200, 200, 200, 200]);
  });
});

describe('mesh/1 trailers', () => {
  /** A raw mesh/1 client: sends `hello` first (SETTINGS or nothing), one request, and collects the frames of its answer. */
  async function ask(port: number, ca: Awaited<ReturnType<typeof makeCa>>, hello: Buffer | null): Promise<Array<{ type: number; flags: number; text: string }>> {
    const sock = tls.connect({ host: '127.0.0.1', port, cert: ca.leaf(idOf('client')), key: ca.key.keyPem, ca: ca.anchor.certPem, checkServerIdentity: () => undefined, ALPNProtocols: [ALPN] });
    await new Promise<void>((resolve, reject) => sock.once('secureConnect', resolve).once('error', reject));
    const got: Array<{ type: number; flags: number; text: string }> = [];
    const done = new Promise<void>((resolve) => {
      const reader = new FrameReader({
        onFrame(type, flags, id, payload) {
          if (id !== 1) return;
          got.push({ type, flags, text: payload.toString('latin1') });
          if (flags & 1) resolve();
        },
      });
      sock.on('data', (c: Buffer) => reader.push(c));
    });
    if (hello) sock.write(hello);
    sock.write(frame(1, 1, 1, 'GET / HTTP/1.1\r\nhost: web\r\n\r\n'));
    await done;
    sock.destroy();
    return got;
  }

  it('sends trailers to a peer that announced them, and never to one of the previous version', { timeout: 20_000 }, async (t) => {
    const ca = await makeCa();
    const peer = await muxPeer(ca.leaf(idOf('web')), ca.key.keyPem, ca.anchor.certPem, {
      request(_req, res) {
        res.writeHead(200, undefined, ['content-type', 'application/grpc']);
        res.end(Buffer.from('body'), ['grpc-status', '7', 'grpc-message', 'no', 'content-length', '9']);
      },
      upgrade: (_r, s) => s.destroy(),
    });
    t.after(() => peer.close());
    const settings = Buffer.alloc(8);
    settings.writeUInt32BE(128, 0);
    settings.writeUInt32BE(1, 4);
    const fresh = await ask(peer.port, ca, frame(6, 0, 0, settings));
    const last = fresh[fresh.length - 1]!;
    assert.equal(last.type, 7, 'a Trailers frame ends the stream');
    // Fields that frame or route a message never trail it.
    assert.equal(last.text, 'grpc-status: 7\r\ngrpc-message: no\r\n\r\n');
    const old = await ask(peer.port, ca, null);
    assert.deepEqual(old.map((f) => f.type), [1, 2], 'a head and its data, no Trailers frame');
    assert.equal(old[1]!.text, 'body');
  });
});
