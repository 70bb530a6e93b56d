// The dashboard's web server, run by `mesh dashboard` on 127.0.0.1: the page and its script, and the control
// plane's read-only API under /api/ (called with the admin credential, which never reaches the browser).
// Access needs the one-time token of the printed URL (then a cookie) or the admin credential; only GET is served.
import http from 'node:http';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { page } from './page.js';
import { certInfo, splitPem } from '../identity/keys.js';
import { MeshError } from '../util/errors.js';

export interface DashboardBackend {
  /** A GET on the control plane's API, with the admin credential. */
  get(path: string): Promise<{ status: number; body: unknown }>;
  adminToken?: string;
  /** `mesh check -o json` for the identity & health page. */
  checkArgs?: string[];
}

/** The control-plane API paths the dashboard reads (all GET). */
const API = /^\/api\/(stat|edges|snapshot|config\/routes|config\/policies|identity|endpoints|authz|tap|telemetry\/targets|traces|traces\/[0-9a-f]{32})$/;
const COOKIE = 'mesh_dashboard';
const TYPES: Record<string, string> = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', txt: 'text/plain; charset=utf-8' };

/** The browser libraries scripts/dashboard-assets.mjs copied beside this file, by name, with their content's hash. */
function loadAssets(): Map<string, { body: Buffer; type: string; hash: string }> {
  const dir = new URL('./assets/', import.meta.url);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    throw new MeshError(`the dashboard's browser libraries are missing from ${dir.pathname}`, 'run npm run build (it copies them there)');
  }
  const out = new Map<string, { body: Buffer; type: string; hash: string }>();
  for (const name of names) {
    const body = readFileSync(new URL(name, dir));
    out.set(name, { body, type: TYPES[name.slice(name.lastIndexOf('.') + 1)] ?? 'application/octet-stream', hash: createHash('sha256').update(body).digest('base64url').slice(0, 12) });
  }
  return out;
}

export function createDashboardServer(b: DashboardBackend): { server: http.Server; token: string } {
  const token = randomBytes(18).toString('base64url');
  const app = readFileSync(new URL('./app/app.js', import.meta.url), 'utf8');
  const assets = loadAssets();
  const PAGE = page((name) => {
    const a = assets.get(name);
    if (!a) throw new MeshError(`the dashboard's browser library ${name} is missing`, 'run npm run build (it copies it to dist/src/dashboard/assets)');
    return `assets/${name}?v=${a.hash}`;
  });
  let checks: { at: number; value: Promise<unknown[]> } | undefined;

  const same = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
  const allowed = (req: http.IncomingMessage) => {
    const cookie = /(?:^|;\s*)mesh_dashboard=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
    const bearer = req.headers.authorization?.startsWith('Bearer ') ? req.headers.authorization.slice(7) : undefined;
    return (cookie !== undefined && same(cookie, token)) || (bearer !== undefined && b.adminToken !== undefined && same(bearer, b.adminToken));
  };
  // The assets' URLs change with their content, so the browser keeps them; everything else is fetched anew.
  const send = (res: http.ServerResponse, status: number, type: string, body: string | Buffer, cache = 'no-store') => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': cache, 'x-content-type-options': 'nosniff',
      'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src data:", 'referrer-policy': 'no-referrer' });
    res.end(body);
  };
  const json = (res: http.ServerResponse, status: number, v: unknown) => send(res, status, 'application/json', JSON.stringify(v));

  async function identitySummary() {
    const r = await b.get('/v1/identity');
    const id = r.body as { trustAnchors: string; issuer: string };
    const certificates = [
      ...splitPem(id.trustAnchors).map((p) => ({ role: 'trust anchor', ...info(p) })),
      ...splitPem(id.issuer).slice(0, 1).map((p) => ({ role: 'issuer', ...info(p) })),
    ];
    if (!checks || Date.now() - checks.at > 30_000) checks = { at: Date.now(), value: runChecks() };
    const proxies = await b.get('/v1/identity/proxies').catch(() => undefined);
    const proxyExpiry = proxies?.status === 200 ? (proxies.body as { expiry: Record<string, number> }).expiry : {};
    return { certificates, proxyExpiry, checks: await checks.value };
  }
  const info = (pem: string) => {
    const c = certInfo(pem);
    return { subject: c.subject.replace(/\n/g, ', '), notAfter: c.notAfter.getTime() };
  };
  const runChecks = () => new Promise<unknown[]>((resolve) => {
    if (!b.checkArgs) return resolve([]);
    execFile(process.execPath, b.checkArgs, { timeout: 20_000 }, (_err, stdout) => {
      try {
        const r = JSON.parse(stdout) as { categories: { checks: unknown[] }[] };
        resolve(r.categories.flatMap((c) => c.checks));
      } catch {
        resolve([{ description: 'mesh check', result: 'error', error: 'mesh check did not answer' }]);
      }
    });
  });

  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://dashboard');
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'the dashboard only reads\n');
      const t = url.searchParams.get('token');
      if (url.pathname === '/' && t !== null && same(t, token)) {
        res.writeHead(303, { location: '/', 'set-cookie': `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/`, 'cache-control': 'no-store' });
        return res.end();
      }
      if (!allowed(req)) return send(res, 401, 'text/plain', 'open the URL mesh dashboard printed (it carries the token)\n');
      if (url.pathname === '/') return send(res, 200, 'text/html; charset=utf-8', PAGE);
      if (url.pathname === '/app.js') return send(res, 200, 'text/javascript; charset=utf-8', app);
      const asset = url.pathname.startsWith('/assets/') ? assets.get(url.pathname.slice(8)) : undefined;
      if (asset) return send(res, 200, asset.type, asset.body, 'private, max-age=31536000, immutable');
      if (url.pathname === '/api/identity-summary') return json(res, 200, await identitySummary());
      if (API.test(url.pathname)) {
        const r = await b.get(`/v1/${url.pathname.slice(5)}${url.search}`);
        return json(res, r.status, r.body);
      }
      send(res, 404, 'text/plain', 'not found\n');
    })().catch((err: Error) => {
      if (!res.headersSent) json(res, 502, { error: err.message });
      else res.destroy();
    });
  });
  return { server, token };
}
