// The proxy's own HTTP/2 codec against hostile peers: raw frames on a real socket to the listener
// apps speak h2c to. What cannot be read one way only ends the stream or the connection with the
// error HTTP/2 names, and nothing a peer sends grows without bound; the same towards an h2c app
// (the inbound side's client). HPACK against RFC 7541's examples.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createHttpServer, PREFACE } from '../src/proxy/wire/h2-server.js';
import { encode, encodedBound, HpackDecoder, HpackError } from '../src/proxy/wire/hpack.js';
import type { H1Server } from '../src/proxy/wire/h1-server.js';
import { H2Pool, type H2Response } from '../src/proxy/wire/h2-client.js';
import { h2Timeouts } from '../src/proxy/wire/h2-conn.js';

const enum F { Data = 0, Headers = 1, Rst = 3, Settings = 4, Ping = 6, Goaway = 7, Window = 8, Cont = 9 }

function frame(type: number, flags: number, id: number, payload: Buffer | string = Buffer.alloc(0)): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload, 'hex') : payload;
  const h = Buffer.alloc(9);
  h.writeUIntBE(p.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id, 5);
  return Buffer.concat([h, p]);
}

function block(fields: string[]): Buffer {
  const b = Buffer.alloc(encodedBound(fields));
  return b.subarray(0, encode(fields, b, 0));
}

const GET = (path = '/'): Buffer => block([':method', 'GET', ':scheme', 'http', ':path', path, ':authority', 'svc']);
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

interface Frame { type: number; flags: number; id: number; payload: Buffer }

/** A raw HTTP/2 client: the preface and empty SETTINGS sent, every frame the server sends kept. */
class Raw {
  readonly frames: Frame[] = [];
  closed = false;
  private buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;

  constructor(readonly sock: net.Socket) {
    sock.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + len) break;
        this.frames.push({ type: this.buf[3]!, flags: this.buf[4]!, id: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) });
        this.buf = this.buf.subarray(9 + len);
      }
      this.wake?.();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    sock.on('error', () => {});
  }

  send(...frames: Buffer[]): void {
    if (!this.sock.destroyed) this.sock.write(Buffer.concat(frames));
  }

  /** Waits (at most 5 s) for a frame the test asks for. */
  async until(pred: (f: Frame) => boolean, what: string): Promise<Frame> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const f = this.frames.find(pred);
      if (f) return f;
      if (this.closed) throw new Error(`connection closed before ${what}: got ${this.frames.map((x) => x.type).join(',')}`);
      if (Date.now() > deadline) throw new Error(`no ${what} in 5 s`);
      await new Promise<void>((r) => {
        // A frame or the close wakes it; the timer only ends the wait at the deadline.
        const t = setTimeout(r, Math.max(0, deadline - Date.now()));
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }

  async goaway(): Promise<number> {
    const f = await this.until((x) => x.type === F.Goaway, 'GOAWAY');
    return f.payload.readUInt32BE(4);
  }

  async rst(id: number): Promise<number> {
    const f = await this.until((x) => x.type === F.Rst && x.id === id, `RST_STREAM on ${id}`);
    return f.payload.readUInt32BE(0);
  }

  async response(id: number): Promise<string[]> {
    const f = await this.until((x) => x.type === F.Headers && x.id === id, `a response on ${id}`);
    const out: string[] = [];
    new HpackDecoder(4096, 1 << 20).decode(f.payload, out);
    return out;
  }
}

describe('the HTTP/2 codec against hostile peers', () => {
  let server: H1Server;
  let port = 0;
  const socks: net.Socket[] = [];

  before(async () => {
    server = createHttpServer({
      request(req, res) {
        // '/hold' is never answered: it keeps its stream open.
        if (req.url === '/hold') return;
        res.writeHead(200, undefined, ['content-type', 'text/plain']);
        res.end(Buffer.from('ok'));
      },
      upgrade: (_req, sock) => sock.destroy(),
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });
  after(async () => {
    for (const s of socks) s.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  async function connect(settings = true): Promise<Raw> {
    const sock = net.connect(port, '127.0.0.1');
    socks.push(sock);
    await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
    const raw = new Raw(sock);
    raw.send(PREFACE, ...(settings ? [frame(F.Settings, 0, 0)] : []));
    return raw;
  }

  it('answers a well-formed request, and a PING', async () => {
    const c = await connect();
    c.send(frame(F.Headers, 0x5, 1, GET()), frame(F.Ping, 0, 0, '0102030405060708'));
    const head = await c.response(1);
    assert.deepEqual(head.slice(0, 2), [':status', '200']);
    const pong = await c.until((f) => f.type === F.Ping, 'PING ACK');
    assert.equal(pong.flags, 1);
    assert.equal(pong.payload.toString('hex'), '0102030405060708');
  });

  it('tells the preface from HTTP/1.1 however the first bytes are split: "P" may be a POST', async () => {
    // Two turns of the loop: the listener (in this process) reads what was written in between, on its own.
    const tick = () => new Promise((r) => setImmediate(() => setImmediate(r)));
    const sock = net.connect(port, '127.0.0.1');
    socks.push(sock);
    await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
    let reply = '';
    sock.on('data', (c: Buffer) => (reply += c.toString('latin1')));
    sock.write('P');
    await tick();
    sock.write('OST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 0\r\n\r\n');
    const deadline = Date.now() + 5000;
    while (!reply.endsWith('0\r\n\r\n')) {
      assert.ok(Date.now() < deadline, `no HTTP/1.1 answer: ${JSON.stringify(reply)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.match(reply, /^HTTP\/1\.1 200/);
    const raw = new Raw(net.connect(port, '127.0.0.1'));
    socks.push(raw.sock);
    await new Promise<void>((r) => raw.sock.once('connect', r));
    for (const piece of [PREFACE.subarray(0, 1), PREFACE.subarray(1, 20), Buffer.concat([PREFACE.subarray(20), frame(F.Settings, 0, 0), frame(F.Headers, 0x5, 1, GET())])]) {
      raw.send(piece);
      await tick();
    }
    assert.deepEqual((await raw.response(1)).slice(0, 2), [':status', '200']);
  });

  it('a first frame other than SETTINGS is a PROTOCOL_ERROR', async () => {
    const c = await connect(false);
    c.send(frame(F.Headers, 0x5, 1, GET()));
    assert.equal(await c.goaway(), 1);
  });

  it('an oversized frame is a FRAME_SIZE_ERROR', async () => {
    const c = await connect();
    c.send(frame(F.Headers, 0x4, 1, GET()), frame(F.Data, 0, 1, Buffer.alloc(16_385)));
    assert.equal(await c.goaway(), 6);
  });

  it('a PING of the wrong length is a FRAME_SIZE_ERROR', async () => {
    const c = await connect();
    c.send(frame(F.Ping, 0, 0, '01'));
    assert.equal(await c.goaway(), 6);
  });

  it('a header block that indexes past the table is a COMPRESSION_ERROR', async () => {
    const c = await connect();
    c.send(frame(F.Headers, 0x5, 1, Buffer.from([0x80 | 0x7f, 0x50])));
    assert.equal(await c.goaway(), 9);
  });

  it('HEADERS on a server stream id, and DATA on a stream never opened, are PROTOCOL_ERRORs', async () => {
    let c = await connect();
    c.send(frame(F.Headers, 0x5, 2, GET()));
    assert.equal(await c.goaway(), 1);
    c = await connect();
    c.send(frame(F.Data, 0x1, 7, 'aa'));
    assert.equal(await c.goaway(), 1);
  });

  it('a window opened past 2^31-1 is a FLOW_CONTROL_ERROR for the connection, a stream reset for a stream', async () => {
    let c = await connect();
    c.send(frame(F.Window, 0, 0, u32(0x7fffffff)));
    assert.equal(await c.goaway(), 3);
    c = await connect();
    c.send(frame(F.Headers, 0x5, 1, GET('/hold')), frame(F.Window, 0, 1, u32(0x7fffffff)));
    assert.equal(await c.rst(1), 3);
  });

  it('DATA past the stream window resets the stream with FLOW_CONTROL_ERROR', async () => {
    const c = await connect();
    const frames = [frame(F.Headers, 0x4, 1, block([':method', 'POST', ':scheme', 'http', ':path', '/hold', ':authority', 'svc']))];
    // The stream window is 256 KiB: 17 frames of 16 KiB overrun it.
    for (let i = 0; i < 17; i++) frames.push(frame(F.Data, 0, 1, Buffer.alloc(16_384)));
    c.send(...frames);
    assert.equal(await c.rst(1), 3);
  });

  it('a header block interrupted by another frame is a PROTOCOL_ERROR', async () => {
    const c = await connect();
    const b = GET();
    c.send(frame(F.Headers, 0x1, 1, b.subarray(0, 3)), frame(F.Ping, 0, 0, '0000000000000000'));
    assert.equal(await c.goaway(), 1);
  });

  it('a flood of CONTINUATION frames ends the connection with ENHANCE_YOUR_CALM', async () => {
    const c = await connect();
    const frames = [frame(F.Headers, 0x1, 1, GET())];
    for (let i = 0; i < 100; i++) frames.push(frame(F.Cont, 0, 1, Buffer.alloc(0)));
    c.send(...frames);
    assert.equal(await c.goaway(), 11);
  });

  it('streams opened and reset at once ("rapid reset") end the connection with ENHANCE_YOUR_CALM', async () => {
    const c = await connect();
    const frames: Buffer[] = [];
    for (let i = 0; i < 300; i++) frames.push(frame(F.Headers, 0x5, 1 + 2 * i, GET('/hold')), frame(F.Rst, 0, 1 + 2 * i, u32(8)));
    c.send(...frames);
    assert.equal(await c.goaway(), 11);
  });

  it('streams past the limit are refused, and the connection carries on', async () => {
    const c = await connect();
    const frames: Buffer[] = [];
    for (let i = 0; i < 101; i++) frames.push(frame(F.Headers, 0x5, 1 + 2 * i, GET('/hold')));
    c.send(...frames);
    assert.equal(await c.rst(201), 7);
    // One of them gone, a new one is served.
    c.send(frame(F.Rst, 0, 1, u32(8)), frame(F.Headers, 0x5, 203, GET()));
    assert.deepEqual((await c.response(203)).slice(0, 2), [':status', '200']);
  });

  it('a malformed request resets its stream only: an upper-case name, a pseudo-header after a field, no :path', async () => {
    const c = await connect();
    c.send(
      frame(F.Headers, 0x5, 1, block([':method', 'GET', ':scheme', 'http', ':path', '/', 'X-Up', 'a'])),
      frame(F.Headers, 0x5, 3, block([':method', 'GET', 'x-a', 'b', ':scheme', 'http', ':path', '/'])),
      frame(F.Headers, 0x5, 5, block([':method', 'GET', ':scheme', 'http'])),
      frame(F.Headers, 0x5, 7, GET()),
    );
    assert.equal(await c.rst(1), 1);
    assert.equal(await c.rst(3), 1);
    assert.equal(await c.rst(5), 1);
    assert.deepEqual((await c.response(7)).slice(0, 2), [':status', '200']);
  });

  it('HEADERS on a closed stream is a STREAM_CLOSED connection error', async () => {
    const c = await connect();
    c.send(frame(F.Headers, 0x5, 1, GET()));
    await c.response(1);
    await c.until((f) => f.type === F.Data && f.id === 1 && (f.flags & 1) === 1, 'the end of stream 1');
    c.send(frame(F.Headers, 0x5, 1, GET()));
    assert.equal(await c.goaway(), 5);
  });

  it('DATA on a closed stream is a STREAM_CLOSED connection error', async () => {
    const c = await connect();
    c.send(frame(F.Headers, 0x5, 1, GET()));
    await c.until((f) => f.type === F.Data && f.id === 1 && (f.flags & 1) === 1, 'the end of stream 1');
    c.send(frame(F.Data, 0x1, 1, 'aa'));
    assert.equal(await c.goaway(), 5);
  });

  it('frames the client sent before it saw our RST_STREAM are ignored', async () => {
    const c = await connect();
    // Answered before its body ends: the server resets the rest of the request (NO_ERROR); the body's last DATA and
    // its trailers were already on the way.
    c.send(frame(F.Headers, 0x4, 1, block([':method', 'POST', ':scheme', 'http', ':path', '/', ':authority', 'svc'])));
    assert.equal(await c.rst(1), 0);
    c.send(frame(F.Data, 0, 1, 'aa'), frame(F.Headers, 0x5, 1, block(['x-trailer', 'late'])), frame(F.Headers, 0x5, 3, GET()));
    assert.deepEqual((await c.response(3)).slice(0, 2), [':status', '200']);
    // A stream the server closed by answering is not one it reset: the grace is for resets only.
    c.send(frame(F.Headers, 0x5, 3, GET()));
    assert.equal(await c.goaway(), 5);
  });

  it('a client that never acknowledges our SETTINGS is cut off with SETTINGS_TIMEOUT', async () => {
    const was = h2Timeouts.settingsAckMs;
    h2Timeouts.settingsAckMs = 300;
    try {
      const acks = await connect();
      acks.send(frame(F.Settings, 1, 0));
      const silent = await connect();
      assert.equal(await silent.goaway(), 4);
      // The one that acknowledged outlived the bound and is still served.
      acks.send(frame(F.Headers, 0x5, 1, GET()));
      assert.deepEqual((await acks.response(1)).slice(0, 2), [':status', '200']);
      assert.ok(!acks.frames.some((f) => f.type === F.Goaway));
    } finally {
      h2Timeouts.settingsAckMs = was;
    }
  });

  it('a body longer than its Content-Length resets the stream', async () => {
    const c = await connect();
    c.send(
      frame(F.Headers, 0x4, 1, block([':method', 'POST', ':scheme', 'http', ':path', '/hold', ':authority', 'svc', 'content-length', '2'])),
      frame(F.Data, 0x1, 1, 'aabbcc'),
    );
    assert.equal(await c.rst(1), 1);
  });
});

describe('HPACK', () => {
  it('decodes the examples of RFC 7541 C.4 (Huffman) with their dynamic table', () => {
    const d = new HpackDecoder(4096, 16_384);
    const out: string[] = [];
    d.decode(Buffer.from('828684418cf1e3c2e5f23a6ba0ab90f4ff', 'hex'), out);
    assert.deepEqual(out, [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com']);
    out.length = 0;
    d.decode(Buffer.from('828684be5886a8eb10649cbf', 'hex'), out);
    assert.deepEqual(out.slice(6), [':authority', 'www.example.com', 'cache-control', 'no-cache']);
    out.length = 0;
    d.decode(Buffer.from('828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf', 'hex'), out);
    assert.deepEqual(out, [':method', 'GET', ':scheme', 'https', ':path', '/index.html', ':authority', 'www.example.com', 'custom-key', 'custom-value']);
  });

  it('round-trips what it encodes', () => {
    const f = [':status', '200', 'content-type', 'application/grpc', 'x-long', 'v'.repeat(300), 'grpc-status', '0'];
    const out: string[] = [];
    new HpackDecoder(4096, 16_384).decode(block(f), out);
    assert.deepEqual(out, f);
  });

  it('refuses bad padding, EOS, a runaway integer, a string past the block and an oversized table update', () => {
    // A one-byte Huffman name not padded with ones; a string of EOS; an integer past 2^28; a string past the block;
    // a table size update past 4096.
    for (const hex of ['0081fe', '0084ffffffff', '00ff8080808080808001', '000a61', '3fe17f']) {
      assert.throws(() => new HpackDecoder(4096, 16_384).decode(Buffer.from(hex, 'hex'), []), HpackError, hex);
    }
  });

  it('says a block is too large, or malformed, without losing its table', () => {
    const d = new HpackDecoder(4096, 100);
    assert.equal(d.decode(block(['x-a', 'v'.repeat(200)]), []), 2);
    assert.equal(d.decode(block(['x-a', 'bad\nvalue']), []), 1);
    const out: string[] = [];
    assert.equal(d.decode(block(['x-a', 'ok']), out), 0);
    assert.deepEqual(out, ['x-a', 'ok']);
  });
});

describe('the h2c client towards an app, against a hostile app', () => {
  type Act = (sock: net.Socket, id: number) => void;
  let act: Act = () => {};
  let app: net.Server;
  let port = 0;
  const pool = new H2Pool({ idleMs: 5000 });
  /** Error codes of the GOAWAYs the client sent the app. */
  const goaways: number[] = [];

  before(async () => {
    app = net.createServer((sock) => {
      sock.on('error', () => {});
      sock.write(frame(F.Settings, 0, 0));
      let buf = Buffer.alloc(0);
      let preface = false;
      sock.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        if (!preface) {
          if (buf.length < PREFACE.length) return;
          buf = buf.subarray(PREFACE.length);
          preface = true;
        }
        while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
          const len = buf.readUIntBE(0, 3);
          if (buf[3] === F.Headers) act(sock, buf.readUInt32BE(5) & 0x7fffffff);
          else if (buf[3] === F.Goaway) goaways.push(buf.readUInt32BE(9 + 4));
          buf = buf.subarray(9 + len);
        }
      });
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    port = (app.address() as net.AddressInfo).port;
  });
  after(async () => {
    pool.destroy();
    await new Promise<void>((r) => app.close(() => r()));
  });

  /** One GET to the app: its status, body and trailers, or the error it failed with. */
  function call(): Promise<{ status: number; body: string; trailers: string[] | null } | Error> {
    return new Promise((resolve) => {
      const r = pool.request({ host: '127.0.0.1', port, method: 'GET', path: '/', headers: ['host', 'app'] });
      r.on('error', (e: Error) => resolve(e));
      r.on('response', (res: H2Response) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString(), trailers: res.trailers }));
        res.on('aborted', () => resolve(new Error('aborted')));
      });
      r.end();
    });
  }

  it('reads a response with its body and trailers', async () => {
    act = (sock, id) => sock.write(Buffer.concat([
      frame(F.Headers, 0x4, id, block([':status', '200', 'content-type', 'application/grpc'])),
      frame(F.Data, 0, id, Buffer.from('hello')),
      frame(F.Headers, 0x5, id, block(['grpc-status', '0'])),
    ]));
    const r = await call();
    assert.ok(!(r instanceof Error), String(r));
    assert.equal(r.status, 200);
    assert.equal(r.body, 'hello');
    assert.deepEqual(r.trailers, ['grpc-status', '0']);
  });

  it('a malformed response head fails the request and resets the stream', async () => {
    act = (sock, id) => sock.write(frame(F.Headers, 0x5, id, block([':status', '200', 'X-Up', 'a'])));
    const r = await call();
    assert.ok(r instanceof Error);
    assert.match(r.message, /reset the stream|HTTP\/2 error/);
  });

  it('a stream past the app\'s GOAWAY fails as refused, and the next request gets a new connection', async () => {
    act = (sock) => sock.write(frame(F.Goaway, 0, 0, Buffer.from('0000000000000000', 'hex')));
    const r = await call();
    assert.ok(r instanceof Error);
    assert.match(r.message, /refused the stream/);
    act = (sock, id) => sock.write(frame(F.Headers, 0x5, id, block([':status', '204'])));
    const next = await call();
    assert.ok(!(next instanceof Error), String(next));
    assert.equal(next.status, 204);
  });

  it('HEADERS from the app on a stream it already ended is a STREAM_CLOSED connection error', async () => {
    act = (sock, id) => sock.write(Buffer.concat([
      frame(F.Headers, 0x5, id, block([':status', '204'])),
      frame(F.Headers, 0x5, id, block([':status', '204'])),
    ]));
    const r = await call();
    assert.ok(!(r instanceof Error), String(r));
    const deadline = Date.now() + 5000;
    while (!goaways.includes(5)) {
      assert.ok(Date.now() < deadline, `no GOAWAY with STREAM_CLOSED: ${goaways.join(',')}`);
      await new Promise((res) => setTimeout(res, 10));
    }
  });

  it('an oversized frame from the app ends its connection and fails the request', async () => {
    act = (sock, id) => sock.write(frame(F.Data, 0, id, Buffer.alloc(16_385)));
    const r = await call();
    assert.ok(r instanceof Error);
  });
});
