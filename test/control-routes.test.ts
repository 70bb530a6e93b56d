// The control plane's API as a route table (src/control/router.ts): methods, paths and prefixes, who may call,
// 404 and 405; then the real control plane's answers to callers without the credential a route needs.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { routeTable, type Route } from '../src/control/router.js';
import { HttpError, sendJson } from '../src/util/http.js';
import { callJson } from './support/http.js';
import { TestMesh } from './support/mesh.js';

const echo = (name: string): Route['handle'] => ({ res, peer, rest }) => sendJson(res, 200, { name, peer: peer?.serviceAccount, rest });

const ROUTES: Route[] = [
  { method: 'GET', path: '/v1/version', who: 'anyone', handle: echo('version') },
  { method: 'GET', path: '/v1/things', who: 'admin', handle: echo('list') },
  { method: 'POST', path: '/v1/things', who: 'proxy', handle: echo('register') },
  { method: 'DELETE', path: '/v1/things/', prefix: true, who: 'proxy', handle: echo('delete') },
  { method: 'GET', path: '/v1/things/watch', who: 'proxy', handle: echo('watch') },
  { method: 'GET', path: '/v1/views', who: 'reader', handle: echo('view') },
];

describe('the control API route table', () => {
  let server: http.Server;
  let base = '';
  const handled: string[] = [];
  before(async () => {
    // Stand-in guards: a proxy is whoever sends x-peer, the admin whoever sends the bearer "admin".
    const handle = routeTable(ROUTES.map((r) => ({ ...r, handle: (c) => (handled.push(`${r.method} ${r.path}`), r.handle(c)) })), {
      proxy(req) {
        const sa = req.headers['x-peer'];
        if (typeof sa !== 'string') throw new HttpError(401, 'a valid mesh client certificate is required');
        return { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: sa };
      },
      admin(req) {
        if (req.headers.authorization !== 'Bearer admin') throw new HttpError(401, 'the admin credential is required');
      },
      reader(req) {
        if (req.headers['x-open'] !== 'yes' && req.headers.authorization !== 'Bearer admin') throw new HttpError(401, 'the admin credential is required');
      },
    });
    server = http.createServer((req, res) => {
      handle(req, res).catch((err: unknown) => sendJson(res, err instanceof HttpError ? err.status : 500, { error: (err as Error).message }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it('serves a route anyone may call', async () => {
    const r = await callJson(`${base}/v1/version?x=1`);
    assert.equal(r.status, 200);
    assert.equal(r.body.name, 'version');
  });

  it('answers an unknown path 404, naming the method and path', async () => {
    const r = await callJson(`${base}/v1/nothing`, { method: 'PUT' });
    assert.equal(r.status, 404);
    assert.equal(r.body.error, 'no such API: PUT /v1/nothing');
  });

  it('answers a known path with another method 405, with Allow listing the methods it has', async () => {
    const r = await callJson(`${base}/v1/things`, { method: 'PUT', bearer: 'admin' });
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow, 'GET, POST');
    assert.match(r.body.error, /PUT is not allowed on \/v1\/things/);
    // An exact path and a prefix that covers it: Allow has the methods of both.
    const w = await callJson(`${base}/v1/things/watch`, { method: 'POST', headers: { 'x-peer': 'web' } });
    assert.equal(w.status, 405);
    assert.equal(w.headers.allow, 'DELETE, GET');
  });

  it('refuses a caller the route does not admit before its handler runs', async () => {
    const before = handled.length;
    for (const [method, path] of [['GET', '/v1/things'], ['POST', '/v1/things'], ['DELETE', '/v1/things/a'], ['GET', '/v1/views']] as const) {
      const r = await callJson(`${base}${path}`, { method });
      assert.equal(r.status, 401, `${method} ${path}`);
    }
    // The admin credential is not a mesh identity, nor the other way round.
    assert.equal((await callJson(`${base}/v1/things`, { method: 'POST', bearer: 'admin' })).status, 401);
    assert.equal((await callJson(`${base}/v1/things`, { headers: { 'x-peer': 'web' } })).status, 401);
    assert.equal(handled.length, before);
  });

  it('hands a proxy route its caller, and a prefix route the decoded rest of the path', async () => {
    const r = await callJson(`${base}/v1/things/web%2D1.default`, { method: 'DELETE', headers: { 'x-peer': 'web' } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { name: 'delete', peer: 'web', rest: 'web-1.default' });
    // The exact path serves its own method; the prefix serves the others on it.
    assert.equal((await callJson(`${base}/v1/things/watch`, { headers: { 'x-peer': 'web' } })).body.name, 'watch');
    assert.equal((await callJson(`${base}/v1/things/watch`, { method: 'DELETE', headers: { 'x-peer': 'web' } })).body.rest, 'watch');
    assert.equal((await callJson(`${base}/v1/things/%E0`, { method: 'DELETE', headers: { 'x-peer': 'web' } })).status, 400);
  });

  it('lets a reader route follow the platform: admin, or open', async () => {
    assert.equal((await callJson(`${base}/v1/views`, { bearer: 'admin' })).status, 200);
    assert.equal((await callJson(`${base}/v1/views`, { headers: { 'x-open': 'yes' } })).status, 200);
  });

  it('refuses a table with a route in it twice', () => {
    assert.throws(() => routeTable([ROUTES[0]!, ROUTES[0]!], { proxy: () => { throw new Error(); }, admin() {}, reader() {} }), /in the table twice/);
  });
});

describe('the local control plane, called without credentials', () => {
  const m = new TestMesh();
  before(() => m.install());
  after(() => m.cleanup());

  it('answers each route as its table says', async () => {
    const cases: [string, string, number][] = [
      ['GET', '/v1/version', 200],
      ['GET', '/ready', 200],
      ['POST', '/v1/certificates', 400],
      ['POST', '/v1/endpoints', 401],
      ['DELETE', '/v1/endpoints/x', 401],
      ['GET', '/v1/watch', 401],
      ['GET', '/v1/tap/watch?instance=x', 401],
      ['POST', '/v1/tap/report', 401],
      ['GET', '/v1/endpoints', 401],
      ['GET', '/v1/snapshot', 401],
      ['GET', '/v1/config/routes', 401],
      ['PUT', '/v1/config/policies', 401],
      ['GET', '/v1/identity', 401],
      ['POST', '/v1/identity/reload', 401],
      ['GET', '/v1/tap', 401],
      ['DELETE', '/v1/tap/x', 401],
      ['GET', '/v1/stat', 401],
      ['GET', '/v1/edges', 401],
      ['GET', '/v1/telemetry/targets', 401],
      ['GET', '/v1/authz', 401],
      ['GET', '/v1/traces', 401],
      ['GET', '/v1/traces/x', 401],
      ['GET', '/v1/nothing', 404],
      ['DELETE', '/v1/config/routes', 405],
      ['POST', '/v1/version', 405],
    ];
    const got: string[] = [];
    for (const [method, path] of cases) got.push(`${method} ${path} ${(await m.api(method, path, method === 'POST' ? { json: {} } : {})).status}`);
    assert.deepEqual(got, cases.map(([method, path, status]) => `${method} ${path} ${status}`));
    const r = await m.api('DELETE', '/v1/config/routes');
    assert.equal(r.headers.allow, 'GET, PUT');
    // A connection's certificate is judged at its handshake: a refused caller gets a new connection.
    assert.equal((await m.api('GET', '/v1/watch')).headers.connection, 'close');
  });
});
