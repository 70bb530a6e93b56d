// HTTP through the real sidecars: client app → client's outbound proxy → mTLS → web's inbound
// proxy → web app. Framing, streaming, header hygiene, upgrades and endpoint choice.
import { describe, it, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import net from 'node:net';
import http from 'node:http';
import { TestMesh, request, waitFor, alive, type WorkloadInfo } from './support/mesh.js';
import { proxyError } from './support/http.js';

const MB = 1024 * 1024;
const LARGE = 50 * MB;

interface Echoed {
  instance: string;
  path: string;
  headers: Record<string, string>;
  bodyBytes: number;
}

interface Sent {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  socket: net.Socket;
}

const rss = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

/** Peak RSS growth of process `pid` while `work` runs, sampled from /proc. */
async function rssGrowth(pid: number, work: () => Promise<void>): Promise<number> {
  const base = rss(pid);
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, rss(pid))), 20);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return Math.max(peak, rss(pid)) - base;
}

function dechunk(s: string): string {
  let out = '';
  for (let i = 0; ;) {
    const eol = s.indexOf('\r\n', i);
    const n = parseInt(s.slice(i, eol), 16);
    if (!(n > 0)) return out;
    out += s.slice(eol + 2, eol + 2 + n);
    i = eol + 2 + n + 2;
  }
}

/** Parses a whole response read off a raw socket that closed after it. */
function parseRaw(text: string): { status: number; headers: Record<string, string>; body: string } {
  const end = text.indexOf('\r\n\r\n');
  const [statusLine, ...lines] = text.slice(0, end < 0 ? text.length : end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
  const body = end < 0 ? '' : text.slice(end + 4);
  return {
    status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0),
    headers,
    body: headers['transfer-encoding'] === 'chunked' ? dechunk(body) : body,
  };
}

describe('HTTP through the sidecars', () => {
  const m = new TestMesh();
  let web1: WorkloadInfo;
  let web2: WorkloadInfo;
  let client: WorkloadInfo;

  /** One request to the client's outbound proxy, for service web unless the Host says otherwise. */
  const send = (o: { path?: string; method?: string; headers?: Record<string, string>; body?: Buffer[] | Readable; agent?: http.Agent } = {}): Promise<Sent> => {
    const [host, port] = client.outbound.split(':') as [string, string];
    return new Promise((resolve, reject) => {
      let socket: net.Socket;
      const req = http.request({ host, port: Number(port), path: o.path ?? '/', method: o.method ?? 'GET', headers: { host: 'web', ...o.headers }, agent: o.agent ?? false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), socket }));
        res.on('error', reject);
      });
      req.on('socket', (s: net.Socket) => (socket = s));
      req.setTimeout(30_000, () => req.destroy(new Error('request timed out')));
      req.on('error', reject);
      if (o.body instanceof Readable) o.body.pipe(req);
      else if (o.body) void (async () => {
        // Separate writes, each after the last was flushed: the body goes out as several chunks.
        for (const c of o.body as Buffer[]) await new Promise((r) => req.write(c, r));
        req.end();
      })();
      else req.end();
    });
  };
  const echoed = (r: { body: Buffer }): Echoed => JSON.parse(r.body.toString()) as Echoed;

  /** A raw connection to the client's outbound proxy, collecting what it reads; closed after the test. */
  const openRaw = (t: TestContext): { sock: net.Socket; got: string; closed: boolean } => {
    const [host, port] = client.outbound.split(':') as [string, string];
    const c = { sock: net.connect({ host, port: Number(port) }), got: '', closed: false };
    c.sock.on('data', (d: Buffer) => (c.got += d.toString('latin1')));
    c.sock.on('error', () => {});
    c.sock.on('close', () => (c.closed = true));
    t.after(() => c.sock.destroy());
    return c;
  };
  /** Writes raw bytes and reads until the proxy closes the connection (bounded). */
  const raw = async (t: TestContext, text: string): Promise<string> => {
    const c = openRaw(t);
    c.sock.write(text);
    await waitFor('the proxy to answer and close', () => c.closed, 10_000, 10);
    return c.got;
  };

  before(async () => {
    await m.install();
    [web1, web2, client] = await Promise.all([m.run('web'), m.run('web'), m.run('client')]);
    const seen = new Set<string>();
    await waitFor('the client to reach both web endpoints', async () => {
      const r = await send({ path: '/ready' });
      if (r.status === 200) seen.add(echoed(r).instance);
      return seen.size === 2;
    }, 30_000);
  });
  after(async () => {
    await m.cleanup();
  });

  it('keeps the client connection alive across several requests', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const sockets = new Set<net.Socket>();
      for (let i = 0; i < 5; i++) {
        const r = await send({ path: `/keepalive/${i}`, agent });
        assert.equal(r.status, 200);
        assert.notEqual(r.headers.connection, 'close');
        sockets.add(r.socket);
      }
      assert.equal(sockets.size, 1);
    } finally {
      agent.destroy();
    }
  });

  it('streams a chunked request body through to /echo and back unchanged', async () => {
    const chunks = Array.from({ length: 8 }, () => randomBytes(16 * 1024 + 7));
    const r = await send({ method: 'POST', path: '/echo', headers: { 'transfer-encoding': 'chunked' }, body: chunks });
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(Buffer.concat(chunks)));
  });

  it('delivers a chunked request body to the app as chunked, with every byte', async () => {
    const chunks = [Buffer.from('first,'), Buffer.from('second,'), Buffer.from('third')];
    const seen = echoed(await send({ method: 'POST', path: '/count', headers: { 'transfer-encoding': 'chunked' }, body: chunks }));
    assert.equal(seen.headers['transfer-encoding'], 'chunked');
    assert.equal(seen.headers['content-length'], undefined);
    assert.equal(seen.bodyBytes, 'first,second,third'.length);
  });

  // Each large test runs its transfer twice and measures the client proxy during the second: the
  // first also grows the proxy's heap to its working size (~35 MB here), which is not buffering.
  // (Web's proxies are not measured: the balancer may send the second transfer to a cold one.)
  it('streams a 50 MB body both ways through /echo without buffering it in the proxies', { timeout: 120_000 }, async () => {
    const block = randomBytes(64 * 1024);
    const blocks = LARGE / block.length;
    const hash = createHash('sha256');
    for (let i = 0; i < blocks; i++) hash.update(block);
    const sentHash = hash.digest('hex');
    const echo = async () => {
      const body = Readable.from((function* () {
        for (let i = 0; i < blocks; i++) yield block;
      })());
      const r = await send({ method: 'POST', path: '/echo', headers: { 'content-length': String(LARGE) }, body });
      assert.equal(r.status, 200);
      assert.equal(r.body.length, LARGE);
      assert.equal(createHash('sha256').update(r.body).digest('hex'), sentHash);
    };
    await echo();
    const growth = await rssGrowth(client.pid, echo);
    assert.ok(growth < LARGE / 2, `the client proxy grew by ${(growth / MB).toFixed(1)} MB`);
  });

  it('streams a 50 MB response from /bytes/N without buffering it in the proxies', { timeout: 120_000 }, async () => {
    const download = async () => {
      const r = await send({ path: `/bytes/${LARGE}` });
      assert.equal(r.status, 200);
      assert.equal(r.body.length, LARGE);
    };
    await download();
    const growth = await rssGrowth(client.pid, download);
    assert.ok(growth < LARGE / 2, `the client proxy grew by ${(growth / MB).toFixed(1)} MB`);
  });

  it('drops hop-by-hop headers, and those Connection names, but passes end-to-end ones', async () => {
    const seen = echoed(await send({
      path: '/hop',
      headers: {
        // TE goes no further (`TE: trailers` alone is said again by each hop, for a client that takes trailers: trailers.test.ts).
        connection: 'x-custom', 'x-custom': 'hop', 'keep-alive': 'timeout=5', te: 'deflate',
        'proxy-authorization': 'Basic c2VjcmV0', 'x-end-to-end': 'kept', authorization: 'Bearer kept',
      },
    }));
    for (const h of ['x-custom', 'keep-alive', 'te', 'proxy-authorization']) assert.equal(seen.headers[h], undefined, h);
    assert.doesNotMatch(seen.headers.connection ?? '', /x-custom/i);
    assert.equal(seen.headers['x-end-to-end'], 'kept');
    assert.equal(seen.headers.authorization, 'Bearer kept');
  });

  const framing: Array<{ name: string; text: string; status: number; error?: string; path?: string }> = [
    { name: 'a request with two Host headers', status: 400, error: 'bad_request',
      text: 'GET /two-hosts HTTP/1.1\r\nHost: web\r\nHost: client\r\nConnection: close\r\n\r\n' },
    { name: 'an absolute-form request whose URI host differs from its Host', status: 400, error: 'bad_request',
      text: 'GET http://web/disagree HTTP/1.1\r\nHost: client\r\nConnection: close\r\n\r\n' },
    { name: 'an absolute-form request whose URI host agrees with its Host', status: 200, path: '/agree?q=1',
      text: 'GET http://web:80/agree?q=1 HTTP/1.1\r\nHost: WEB\r\nConnection: close\r\n\r\n' },
    { name: 'a curl -x style proxy request', status: 200, path: '/curl',
      text: 'GET http://web/curl HTTP/1.1\r\nHost: web\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nProxy-Connection: Keep-Alive\r\nConnection: close\r\n\r\n' },
    { name: 'an HTTP/1.0 request with Transfer-Encoding', status: 400, error: 'bad_request',
      text: 'POST /te-1.0 HTTP/1.0\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' },
  ];
  for (const c of framing) {
    it(`answers ${c.status} to ${c.name}`, async (t) => {
      const r = parseRaw(await raw(t, c.text));
      assert.equal(r.status, c.status, JSON.stringify(r));
      // The proxy's own refusal, not Node's parser's.
      if (c.error) assert.equal(proxyError(r.headers), c.error);
      if (c.path) {
        const seen = JSON.parse(r.body) as Echoed;
        assert.equal(seen.path, c.path);
        assert.equal(seen.headers['proxy-connection'], undefined);
      }
    });
  }

  it('answers an HTTP/1.0 client without chunked framing, which it cannot read', {}, async (t) => {
    const text = await raw(t, 'GET /http10 HTTP/1.0\r\nHost: web\r\n\r\n');
    const r = parseRaw(text);
    assert.equal(r.status, 200);
    assert.equal(r.headers['transfer-encoding'], undefined);
    assert.equal((JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Echoed).path, '/http10');
  });

  it('answers pipelined requests in order, and none after one that asked to close', async (t) => {
    const text = await raw(t, 'GET /p1 HTTP/1.1\r\nHost: web\r\n\r\nGET /p2 HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\nGET /p3 HTTP/1.1\r\nHost: web\r\n\r\n');
    const paths = [...text.matchAll(/"path":"([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(paths, ['/p1', '/p2']);
    assert.equal(text.match(/^HTTP\/1\.1 200 /gm)?.length, 2);
  });

  it('answers 502 naming the service when the Host is not in the mesh', async () => {
    const r = await request(client.outbound, { path: '/', headers: { host: 'nosuch.default:8080' } });
    assert.equal(r.status, 502);
    // A name outside the mesh goes out as egress: this one does not resolve.
    assert.equal(proxyError(r.headers), 'connect');
    assert.match(String(r.headers['mesh-proxy-error']), /nosuch\.default/);
  });

  for (const line of ['GET /upgrade HTTP/1.1', 'GET http://web/upgrade HTTP/1.1']) {
    it(`passes an Upgrade through (${line}): 101, then bytes echo back`, { timeout: 30_000 }, async (t) => {
      const c = openRaw(t);
      c.sock.write(`${line}\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n`);
      await waitFor('the upgrade response', () => c.got.includes('\r\n\r\n'), 10_000, 10);
      const head = parseRaw(c.got);
      assert.equal(head.status, 101);
      assert.equal(head.headers.upgrade, 'echo');
      c.got = head.body;
      for (const msg of ['hello through the mesh', ' and a second frame']) {
        c.sock.write(msg);
        await waitFor(`the echo of ${msg}`, () => c.got.endsWith(msg), 10_000, 10);
      }
      assert.equal(c.got, 'hello through the mesh and a second frame');
    });
  }

  it('answers 400 to an Upgrade whose absolute-form URI host differs from its Host', {
    timeout: 30_000,
  }, async (t) => {
    const c = openRaw(t);
    c.sock.write('GET http://web/upgrade HTTP/1.1\r\nHost: client\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
    await waitFor('a response head', () => c.got.includes('\r\n\r\n'), 10_000, 10);
    const r = parseRaw(c.got);
    assert.equal(r.status, 400);
    assert.equal(proxyError(r.headers), 'bad_request');
  });

  it('balances 40 concurrent requests across both web endpoints', async () => {
    // Peak-EWMA sends sequential requests to the faster endpoint; load in flight spreads them.
    const counts = new Map<string, number>();
    await Promise.all(Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 5; i++) {
        const r = await send({ path: `/lb/${w}/${i}` });
        assert.equal(r.status, 200);
        const who = String(r.headers['x-instance']);
        counts.set(who, (counts.get(who) ?? 0) + 1);
      }
    }));
    assert.deepEqual([...counts.keys()].sort(), [web1.instance, web2.instance].sort());
  });

  /** Sum of one metric's series in the client sidecar whose labels contain every `want`. */
  const clientMetric = async (name: string, ...want: string[]): Promise<number> => {
    const text = (await request(client.admin, { path: '/metrics' })).body;
    let sum = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith(`${name}{`) && want.every((w) => line.includes(w))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
  };

  it('carries concurrent requests to an endpoint as streams of one mTLS connection (mesh/1)', async () => {
    const dst = ['direction="outbound"', 'peer="dst"'];
    const opened = await clientMetric('tcp_open_total', ...dst);
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => send({ path: `/mux/${i}` })));
    for (const r of results) assert.equal(r.status, 200);
    // At most one connection per web endpoint, the ones earlier tests opened.
    assert.ok(await clientMetric('tcp_open_connections', ...dst) <= 2);
    assert.equal(await clientMetric('tcp_open_total', ...dst), opened);
  });

  it('echoes 40 concurrent bodies of mixed sizes and framings, every byte back to its sender', { timeout: 60_000 }, async () => {
    // Sizes on both sides of a stream's 256 KiB window, so windows open and close mid-body.
    const sizes = Array.from({ length: 40 }, (_, i) => [0, 1, 1000, 64 * 1024, 300 * 1024, 700 * 1024][i % 6]!);
    await Promise.all(sizes.map(async (size, i) => {
      const body = randomBytes(size);
      const parts = size > 0 ? [body.subarray(0, size >> 1), body.subarray(size >> 1)].filter((p) => p.length > 0) : [];
      const headers: Record<string, string> = i % 2 ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(size) };
      const r = await send({ method: 'POST', path: '/echo', headers, body: parts });
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(body), `body ${i} (${size} bytes) came back as ${r.body.length} different bytes`);
    }));
  });

  it('holds up no other request while a client stops reading a large response', { timeout: 60_000 }, async (t) => {
    const stalled = openRaw(t);
    let got = 0;
    stalled.sock.removeAllListeners('data');
    stalled.sock.on('data', (d: Buffer) => {
      got += d.length;
      stalled.sock.pause();
    });
    stalled.sock.write(`GET /bytes/${LARGE} HTTP/1.1\r\nHost: web\r\n\r\n`);
    await waitFor('the large response to start', () => got > 0, 10_000, 10);
    const base = rss(client.pid);
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => send({ path: `/beside/${i}` })));
    for (const r of results) assert.equal(r.status, 200);
    assert.ok(Date.now() - started < 5_000, `the other requests took ${Date.now() - started} ms`);
    // The stalled stream's window bounds what the client proxy holds for it.
    assert.ok(rss(client.pid) - base < 20 * MB, `the client proxy grew by ${((rss(client.pid) - base) / MB).toFixed(1)} MB`);
  });

  // Last: it kills web2. Requests may fail while the mesh notices; within 10 s none may.
  it('drops an endpoint whose app and sidecar died, within 10 s', { timeout: 60_000 }, async () => {
    const killedAt = Date.now();
    const left = () => Math.max(0, killedAt + 10_000 - Date.now());
    process.kill(web2.pid, 'SIGKILL');
    process.kill(web2.appPid, 'SIGKILL');
    await waitFor('web2 to die', () => !alive(web2.pid) && !alive(web2.appPid), left());
    await waitFor('the control plane to drop web2', () => !readFileSync(join(m.dir, 'registry.json'), 'utf8').includes(web2.instance), left());
    await waitFor('ten requests in a row to succeed on web1', async () => {
      for (let i = 0; i < 10; i++) {
        const r = await send({ path: `/after-kill/${i}` });
        if (r.status !== 200 || r.headers['x-instance'] !== web1.instance) return false;
      }
      return true;
    }, left());
    assert.ok(Date.now() - killedAt <= 10_000, `took ${Date.now() - killedAt} ms`);
    for (let i = 0; i < 20; i++) {
      const r = await send({ path: `/settled/${i}` });
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-instance'], web1.instance);
    }
  });
});
