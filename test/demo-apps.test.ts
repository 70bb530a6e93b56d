// The demo's bookinfo apps as real processes, wired together by a fake sidecar that routes by the
// Host header's service name: versions shown, stars, header propagation, sign-in and failures.
import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import http from 'node:http';
import http2 from 'node:http2';
import { createServer as netCreateServer, type Socket } from 'node:net';
import type net from 'node:net';
import { freePort, waitFor } from './support/mesh.js';
import { get as httpGet, type Reply } from './support/http.js';
import { start, type Started } from './support/process.js';

// dist/test/demo-apps.test.js → ../../demo; MESH_DEMO_DIR overrides it when compiled elsewhere.
const DEMO_DIR = process.env.MESH_DEMO_DIR ?? fileURLToPath(new URL('../../demo/', import.meta.url));
const WAIT_MS = 10_000;

const get = (port: number, path: string, headers: http.OutgoingHttpHeaders = {}): Promise<Reply> => httpGet(`127.0.0.1:${port}`, path, { headers, timeoutMs: 5000 });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface App extends Started {
  name: string;
  port: number;
}

const apps: App[] = [];

function spawnApp(script: string, env: Record<string, string>, port = 0): App {
  const name = `${script} ${env.SERVICE_VERSION ?? ''}`.trim();
  const app: App = { ...start(process.execPath, [join(DEMO_DIR, script)], { env: { PATH: process.env.PATH ?? '', ...(port ? { PORT: String(port) } : {}), ...env }, name }), name, port };
  apps.push(app);
  return app;
}

/** Spawns an app on a free port and waits (bounded) until its /health answers. */
async function startApp(script: string, env: Record<string, string>): Promise<App> {
  const app = spawnApp(script, env, await freePort());
  await waitFor(`${app.name} to answer /health`, async () => {
    if (app.child.exitCode !== null) throw new Error(`${app.name} exited with ${app.child.exitCode}:\n${app.output()}`);
    return (await get(app.port, '/health')).status === 200;
  }, WAIT_MS, 50).catch((err: Error) => { throw new Error(`${err.message}\n${app.output()}`); });
  return app;
}

/** SIGTERM, then SIGKILL if it lingers; resolves with the exit code (null if it had to be killed). */
const stopApp = (app: App): Promise<number | null> => app.stop(3000);

interface Seen {
  service: string;
  path: string;
  headers: http.IncomingHttpHeaders;
}

/**
 * Stands in for the sidecar's outbound listener: routes by the Host header's (or :authority's) service name,
 * records each call. reviews calls ratings over gRPC, HTTP/2 with prior knowledge: the first bytes decide.
 */
class FakeSidecar {
  readonly routes = new Map<string, number>();
  seen: Seen[] = [];
  port = 0;
  private readonly h2 = http2.createServer((req, res) => {
    const authority = String(req.headers[':authority'] ?? '');
    const service = authority.split(':')[0]!;
    this.seen.push({ service, path: req.url, headers: { ...req.headers, host: authority } });
    const port = this.routes.get(service);
    if (port === undefined) return void res.writeHead(404, { 'content-type': 'text/plain' }).end(`no route to ${service}`);
    const client = http2.connect(`http://127.0.0.1:${port}`);
    client.on('error', () => res.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM));
    const up = client.request(req.headers);
    up.on('response', (h) => {
      const { ':status': status, ...rest } = h;
      res.writeHead(Number(status), rest);
    });
    up.on('trailers', (t) => res.addTrailers(t));
    up.on('data', (c: Buffer) => res.write(c));
    up.on('end', () => res.end());
    up.on('close', () => client.close());
    req.pipe(up);
  });
  private readonly sockets = new Set<Socket>();
  private readonly server = netCreateServer((sock) => {
    this.sockets.add(sock);
    sock.once('close', () => this.sockets.delete(sock));
    sock.once('data', (first: Buffer) => {
      sock.pause();
      sock.unshift(first);
      if (first.toString('latin1', 0, 3) === 'PRI') return void this.h2.emit('connection', sock);
      this.h1.emit('connection', sock);
      sock.resume();
    });
  });
  private readonly h1 = http.createServer((req, res) => {
    const service = (req.headers.host ?? '').split(':')[0];
    this.seen.push({ service, path: req.url ?? '', headers: req.headers });
    const port = this.routes.get(service);
    const fail = (status: number, msg: string) => {
      if (!res.headersSent) res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(msg);
    };
    if (port === undefined) return fail(404, `no route to ${service}`);
    const up = http.request({ host: '127.0.0.1', port, path: req.url, method: req.method, headers: req.headers, agent: false }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', (err) => fail(503, `upstream ${service}: ${err.message}`));
    req.pipe(up);
  });

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  calls(service: string): Seen[] {
    return this.seen.filter((s) => s.service === service);
  }

  close(): Promise<void> {
    for (const sock of this.sockets) sock.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('demo apps', () => {
  const sidecar = new FakeSidecar();
  const reviews: Record<string, App> = {};
  let productpage: App;

  const routeReviews = (version: string) => sidecar.routes.set('reviews', reviews[version].port);
  const page = (path = '/productpage', headers: http.OutgoingHttpHeaders = {}) => get(productpage.port, path, headers);

  before(async () => {
    await sidecar.start();
    const env = { MESH_OUTBOUND: `127.0.0.1:${sidecar.port}` };
    const [details, ratings, r1, r2, r3, pp] = await Promise.all([
      startApp('details.js', env),
      startApp('ratings.js', env),
      startApp('reviews.js', { ...env, SERVICE_VERSION: 'v1' }),
      startApp('reviews.js', { ...env, SERVICE_VERSION: 'v2' }),
      startApp('reviews.js', { ...env, SERVICE_VERSION: 'v3' }),
      startApp('productpage.js', env),
    ]);
    Object.assign(reviews, { v1: r1, v2: r2, v3: r3 });
    productpage = pp;
    sidecar.routes.set('details', details.port);
    sidecar.routes.set('ratings', ratings.port);
  });

  afterEach(() => {
    sidecar.seen = [];
  });

  after(async () => {
    await Promise.all(apps.map(stopApp));
    await sidecar.close();
  });

  it('serves the book with reviews v1 and no stars', async () => {
    routeReviews('v1');
    const r = await page();
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'] ?? '', /text\/html/);
    assert.match(r.body, /The Comedy of Errors/);
    assert.match(r.body, /William Shakespeare/);
    assert.match(r.body, /PublisherA/);
    assert.match(r.body, /The slapstick humour is refreshing!/);
    assert.match(r.body, /Reviews served by: <b>reviews-v1<\/b>/);
    assert.doesNotMatch(r.body, /[★☆]/);
    assert.equal(sidecar.calls('ratings').length, 0);
  });

  it('shows black stars from reviews v2', async () => {
    routeReviews('v2');
    const r = await page('/');
    assert.equal(r.status, 200);
    assert.match(r.body, /reviews-v2/);
    assert.match(r.body, /style="color: black"[^>]*>★★★★★</);
    assert.match(r.body, /style="color: black"[^>]*>★★★★☆</);
    assert.doesNotMatch(r.body, /color: red/);
  });

  it('shows red stars from reviews v3', async () => {
    routeReviews('v3');
    const r = await page();
    assert.equal(r.status, 200);
    assert.match(r.body, /reviews-v3/);
    assert.match(r.body, /style="color: red"[^>]*>★★★★★</);
    assert.match(r.body, /style="color: red"[^>]*>★★★★☆</);
  });

  it('forwards end-user and trace headers to details, reviews and ratings', async () => {
    routeReviews('v2');
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const r = await page('/productpage', { 'end-user': 'alice', traceparent, 'x-request-id': 'req-42', 'x-b3-traceid': 'abc123' });
    assert.equal(r.status, 200);
    assert.match(r.body, /signed in as <b>alice<\/b>/);
    for (const [service, path] of [['details', '/details/0'], ['reviews', '/reviews/0'], ['ratings', '/bookinfo.Ratings/Get']]) {
      const calls = sidecar.calls(service);
      assert.equal(calls.length, 1, `one call to ${service}`);
      assert.equal(calls[0].path, path);
      assert.equal(calls[0].headers.host, `${service}:9080`);
      assert.equal(calls[0].headers['end-user'], 'alice', service);
      assert.equal(calls[0].headers.traceparent, traceparent, service);
      assert.equal(calls[0].headers['x-request-id'], 'req-42', service);
      assert.equal(calls[0].headers['x-b3-traceid'], 'abc123', service);
    }
  });

  it('signs in with ?u=NAME, remembers it in a cookie, and honours that cookie', async () => {
    routeReviews('v3');
    const r = await page('/productpage?u=jason');
    assert.equal(r.status, 200);
    assert.match(r.body, /signed in as <b>jason<\/b>/);
    assert.match(String(r.headers['set-cookie']), /user=jason/);
    for (const service of ['details', 'reviews', 'ratings']) assert.equal(sidecar.calls(service)[0]?.headers['end-user'], 'jason', service);

    sidecar.seen = [];
    const again = await page('/productpage', { cookie: 'theme=dark; user=jason' });
    assert.match(again.body, /signed in as <b>jason<\/b>/);
    assert.equal(sidecar.calls('reviews')[0]?.headers['end-user'], 'jason');
    assert.equal(sidecar.calls('reviews')[0]?.headers.cookie, 'theme=dark; user=jason');

    const anonymous = await page('/productpage');
    assert.doesNotMatch(anonymous.body, /signed in as/);
  });

  it('still answers 200 with an apology when reviews is unreachable', async () => {
    sidecar.routes.set('reviews', await freePort());
    const r = await page();
    assert.equal(r.status, 200);
    assert.match(r.body, /Sorry, product reviews are currently unavailable/);
    assert.match(r.body, /William Shakespeare/, 'details still shown');
    assert.doesNotMatch(r.body, /reviews-v\d/);
  });

  it('shows the ratings error when reviews v2 cannot reach ratings', async () => {
    routeReviews('v2');
    const ratingsPort = sidecar.routes.get('ratings')!;
    sidecar.routes.delete('ratings');
    try {
      const r = await page();
      assert.equal(r.status, 200);
      assert.match(r.body, /reviews-v2/);
      assert.match(r.body, /Ratings service is currently unavailable/);
      assert.doesNotMatch(r.body, /★/);
    } finally {
      sidecar.routes.set('ratings', ratingsPort);
    }
  });

  it('answers the JSON API and the health checks', async () => {
    routeReviews('v3');
    const api = await page('/api/v1/products/0');
    assert.equal(api.status, 200);
    const body = JSON.parse(api.body);
    assert.equal(body.details.author, 'William Shakespeare');
    assert.equal(body.details.year, 1595);
    assert.equal(body.reviews.podname, 'reviews-v3');
    assert.deepEqual(body.reviews.reviews[0].rating, { stars: 5, color: 'red' });

    const ratings = JSON.parse((await get(sidecar.routes.get('ratings')!, '/ratings/0')).body);
    assert.deepEqual(ratings, { id: 0, ratings: { Reviewer1: 5, Reviewer2: 4 } });
    const v1 = JSON.parse((await get(reviews.v1.port, '/reviews/0')).body);
    assert.equal(v1.podname, 'reviews-v1');
    assert.equal(v1.reviews.length, 2);
    assert.equal(v1.reviews[0].rating, undefined);

    for (const app of apps) {
      const h = await get(app.port, '/health');
      assert.equal(h.status, 200, app.name);
      assert.equal(h.body, 'ok', app.name);
    }
    assert.equal((await page('/nope')).status, 404);
  });

  it('exits 0 promptly on SIGTERM, with keep-alive connections open', async () => {
    // The sidecar's agent-less proxy closes its connections, so hold one open to productpage directly.
    const agent = new http.Agent({ keepAlive: true });
    try {
      await httpGet(`127.0.0.1:${productpage.port}`, '/health', { agent });
      const started = Date.now();
      const codes = await Promise.all(apps.map(stopApp));
      assert.deepEqual(codes, apps.map(() => 0), apps.map((a) => `${a.name}: ${a.output()}`).join('\n'));
      assert.ok(Date.now() - started < 2000, 'exited within 2 s');
      for (const app of apps) assert.match(app.output(), /listening on 127\.0\.0\.1:\d+/, app.name);
    } finally {
      agent.destroy();
    }
  });
});

describe('demo traffic generator', () => {
  let status = 200;
  const hits: { path: string; agent: string }[] = [];
  const target = http.createServer((req, res) => {
    hits.push({ path: req.url ?? '', agent: req.headers['user-agent'] ?? '' });
    res.writeHead(status).end('page');
  });
  let traffic: App;

  before(async () => {
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const { port } = target.address() as net.AddressInfo;
    traffic = spawnApp('traffic.js', { TARGET_URL: `http://127.0.0.1:${port}/productpage`, RATE: '40' });
  });

  after(async () => {
    await stopApp(traffic);
    target.closeAllConnections();
    await new Promise((resolve) => target.close(resolve));
  });

  it('sends GETs at about the rate asked', async () => {
    const deadline = Date.now() + WAIT_MS;
    while (hits.length < 10 && Date.now() < deadline) await sleep(20);
    assert.ok(hits.length >= 10, `${hits.length} requests\n${traffic.output()}`);
    assert.equal(hits[0].path, '/productpage');
    const n = hits.length;
    await sleep(500);
    const perSecond = (hits.length - n) * 2;
    assert.ok(perSecond >= 20 && perSecond <= 60, `${perSecond}/s for RATE=40`);
  });

  it('backs off while the target fails, and exits 0 on SIGTERM', async () => {
    status = 503;
    await sleep(300);
    const n = hits.length;
    await sleep(1000);
    // At 40/s that would be 40 requests; backing off keeps it to a handful.
    assert.ok(hits.length - n <= 5, `${hits.length - n} requests in 1 s against a failing target`);
    assert.match(traffic.output(), /requests failed/);
    assert.equal(await stopApp(traffic), 0);
  });
});
