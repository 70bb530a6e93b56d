// Sockets the proxy opens read into one shared buffer (issue 14): what outlives a read must be a copy.
// The app-side HTTP/1.1 client: responses that arrive in pieces on several connections at once, kept
// until they end, come out byte for byte. mesh/1's writer and a stream's sender: what they queue or
// hold from the shared buffer goes out as it was read, whatever the next read puts there.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { Pool, upgradeRequest, type UpstreamResponse } from '../src/proxy/wire/h1-client.js';
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

describe('h1-client upgrades', () => {
  /** An app that answers every request head on a connection with `answer`, then echoes what follows. */
  async function app(answer: string): Promise<{ port: number; heads: string[]; open(): number; close(): Promise<void> }> {
    const heads: string[] = [];
    const open = new Set<net.Socket>();
    const server = net.createServer((s) => {
      open.add(s);
      s.on('close', () => open.delete(s));
      let got = '';
      const onHead = (d: Buffer) => {
        got += d.toString('latin1');
        if (!got.includes('\r\n\r\n')) return;
        s.off('data', onHead);
        heads.push(got);
        s.write(answer);
        if (answer.startsWith('HTTP/1.1 101')) s.pipe(s);
      };
      s.on('data', onHead);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return {
      port: (server.address() as net.AddressInfo).port,
      heads,
      open: () => open.size,
      close: async () => {
        for (const s of open) s.destroy();
        await new Promise((r) => server.close(r));
      },
    };
  }
  const request = (port: number) => upgradeRequest({ host: '127.0.0.1', port, method: 'GET', path: '/ws', headers: ['host', 'app', 'connection', 'upgrade', 'upgrade', 'echo'] });

  it('hands the connection over on a 101, with the bytes that came behind its head', async () => {
    const a = await app('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nearly bytes');
    try {
      const up = request(a.port);
      const [head, sock, rest] = await new Promise<[{ statusMessage: string; rawHeaders: string[] }, net.Socket, Buffer | null]>((resolve, reject) => {
        up.on('upgrade', (h, s, r) => resolve([h, s, r]));
        up.on('response', () => reject(new Error('an ordinary response')));
        up.on('error', reject);
        up.end();
      });
      assert.equal(a.heads[0], 'GET /ws HTTP/1.1\r\nhost: app\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n', 'the head as given, nothing added');
      assert.equal(head.statusMessage, 'Switching Protocols');
      assert.deepEqual(head.rawHeaders, ['Upgrade', 'echo', 'Connection', 'Upgrade']);
      assert.equal(String(rest), 'early bytes');
      let echoed = '';
      sock.on('data', (d: Buffer) => (echoed += d));
      sock.write('after the switch');
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`echoed ${JSON.stringify(echoed)}`)), 5_000);
        const check = () => (echoed === 'after the switch' ? (clearTimeout(t), resolve()) : setImmediate(check));
        check();
      });
      sock.destroy();
    } finally {
      await a.close();
    }
  });

  it('passes any other answer on as a response, and closes the connection after it', async () => {
    const a = await app('HTTP/1.1 403 Forbidden\r\ncontent-length: 4\r\n\r\nnope');
    try {
      const up = request(a.port);
      // Its body comes in the same turn as its head: read from the 'response' event on.
      const [res, body] = await new Promise<[UpstreamResponse, string]>((resolve, reject) => {
        up.on('response', (r: UpstreamResponse) => {
          let b = '';
          r.on('data', (d: Buffer) => (b += d));
          r.on('end', () => resolve([r, b]));
        });
        up.on('upgrade', () => reject(new Error('upgraded')));
        up.on('error', reject);
        up.end();
      });
      assert.equal(res.statusCode, 403);
      assert.equal(body, 'nope');
      await new Promise<void>((resolve, reject) => {
        // The app keeps it alive: only the client closes it.
        const t = setTimeout(() => reject(new Error('the connection stayed open')), 5_000);
        const check = () => (a.open() === 0 ? (clearTimeout(t), resolve()) : setImmediate(check));
        check();
      });
    } finally {
      await a.close();
    }
  });

  it('refuses a 101 to a request that did not ask to upgrade', async () => {
    const a = await app('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    const pool = new Pool({ idleMs: 1_000, maxIdle: 1 });
    try {
      const up = pool.request({ host: '127.0.0.1', port: a.port, method: 'GET', path: '/', headers: ['host', 'app'] });
      const err = await new Promise<Error>((resolve) => {
        up.on('error', resolve);
        up.on('response', () => resolve(new Error('a response')));
        up.end();
      });
      assert.match(err.message, /switched protocols unasked/);
    } finally {
      pool.destroy();
      await a.close();
    }
  });
});
