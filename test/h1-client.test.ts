// Sockets the proxy opens read into one shared buffer (issue 14): what outlives a read must be a copy.
// The app-side HTTP/1.1 client: responses that arrive in pieces on several connections at once, kept
// until they end, come out byte for byte. mesh/1's writer and a stream's sender: what they queue or
// hold from the shared buffer goes out as it was read, whatever the next read puts there.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { Pool } from '../src/proxy/wire/h1-client.js';
import { FrameWriter, HDR, T } from '../src/proxy/wire/mux-frames.js';
import { ConnFlow, Sender } from '../src/proxy/wire/mux-flow.js';
import { READ_BUF } from '../src/proxy/wire/read-buffer.js';

/** A body whose bytes tell where they are, different per connection. */
function bodyFor(tag: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (tag * 31 + i * 7) & 0xff;
  return b;
}

describe('h1-client reads', () => {
  let server: net.Server;
  let port: number;
  const sockets = new Set<net.Socket>();

  before(async () => {
    // Each response goes out in pieces a turn apart: the head split, the body in 1-3000 byte slices,
    // chunked for odd tags; the tag comes in the request path.
    server = net.createServer((s) => {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => sockets.delete(s));
      s.on('data', (d) => {
        const tag = Number(/GET \/(\d+)/.exec(d.toString('latin1'))![1]);
        const body = bodyFor(tag, 20_000 + tag * 997);
        const chunked = tag % 2 === 1;
        const head = Buffer.from(`HTTP/1.1 200 OK\r\n${chunked ? 'transfer-encoding: chunked' : `content-length: ${body.length}`}\r\nx-tag: ${tag}\r\n\r\n`);
        const pieces: Buffer[] = [head.subarray(0, 9), head.subarray(9)];
        for (let at = 0, k = 1; at < body.length; k++) {
          const n = Math.min(body.length - at, 1 + ((k * 1237 + tag) % 3000));
          const slice = body.subarray(at, at + n);
          pieces.push(chunked ? Buffer.concat([Buffer.from(`${n.toString(16)}\r\n`), slice, Buffer.from('\r\n')]) : slice);
          at += n;
        }
        if (chunked) pieces.push(Buffer.from('0\r\n\r\n'));
        const next = (): void => {
          const p = pieces.shift();
          if (p === undefined || s.destroyed) return;
          s.write(p);
          setImmediate(next);
        };
        next();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  it('hands on bytes that later reads of other connections do not overwrite', async () => {
    const pool = new Pool({ idleMs: 5_000, maxIdle: 8 });
    try {
      const one = (tag: number) => new Promise<{ tag: string; body: Buffer }>((resolve, reject) => {
        const req = pool.request({ host: '127.0.0.1', port, method: 'GET', path: `/${tag}`, headers: ['host', 'app'] });
        req.on('error', reject);
        req.on('response', (res) => {
          // Kept as handed on, joined only at the end.
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ tag: res.rawHeaders[res.rawHeaders.indexOf('x-tag') + 1]!, body: Buffer.concat(chunks) }));
          res.on('aborted', () => reject(new Error(`response ${tag} aborted`)));
        });
        req.end();
      });
      const tags = Array.from({ length: 12 }, (_, i) => i + 1);
      const got = await Promise.all(tags.map(one));
      for (const [i, r] of got.entries()) {
        assert.equal(r.tag, String(tags[i]));
        assert.ok(r.body.equals(bodyFor(tags[i]!, 20_000 + tags[i]! * 997)), `body of response ${tags[i]} intact`);
      }
    } finally {
      pool.destroy();
    }
  });
});

describe('mesh/1 writes from the shared read buffer', () => {
  /** A writer on an in-memory socket, past the SETTINGS frame its flow control queues first. */
  const setup = () => {
    const sock = new PassThrough();
    const w = new FrameWriter(sock as unknown as net.Socket);
    const flow = new ConnFlow(w, 0);
    const turn = async (): Promise<Buffer> => {
      await new Promise((r) => setImmediate(r));
      return (sock.read() as Buffer | null) ?? Buffer.alloc(0);
    };
    return { w, flow, turn };
  };

  it('sends a frame as queued, though the buffer it was read into is reused before the turn ends', async () => {
    const { w, turn } = setup();
    READ_BUF.fill(0x61, 0, 1000);
    w.frame(T.Data, 0, 1, READ_BUF.subarray(0, 1000));
    READ_BUF.fill(0x62, 0, 1000);
    const out = (await turn()).subarray(HDR + 8);
    assert.equal(out[0], T.Data);
    assert.equal(out.readUInt32BE(6), 1000);
    assert.ok(out.subarray(HDR).equals(Buffer.alloc(1000, 0x61)));
  });

  it('keeps a copy of what waits for a window, and sends that when the window opens', async () => {
    const { flow, turn } = setup();
    await turn();
    const s = new Sender(flow, 1, { drained() {} });
    s.window = 0;
    READ_BUF.fill(0x61, 0, 1000);
    assert.equal(s.data(READ_BUF.subarray(0, 1000), false), false, 'the source is told to wait');
    READ_BUF.fill(0x62, 0, 1000);
    assert.equal(s.opened(1000), true);
    const out = await turn();
    assert.equal(out.readUInt32BE(6), 1000);
    assert.ok(out.subarray(HDR).equals(Buffer.alloc(1000, 0x61)));
  });
});
