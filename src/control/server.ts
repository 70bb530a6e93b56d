// The control plane's API: certificates (identity), endpoint registration (discovery), config watch.
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { timingSafeEqual } from 'node:crypto';
import { URL } from 'node:url';
import { formatIdentity, parseIdentity, verifyPeer, type Identity } from '../identity/spiffe.js';
import type { Issuer } from '../identity/ca.js';
import { configVersion, conflictStatus, expectedVersion } from './config-version.js';
import { ServingCertRenewer, type MakeServingTls, type ServingTls } from './serving-cert.js';
import { checkName, type ConfigKind, type Snapshot } from '../model/snapshot.js';
import { HttpError, readJsonBody, sendJson } from '../util/http.js';
import type { Registry } from './registry.js';
import type { CertificateRequest, CertificateResponse, EndpointRecord, IdentityInfo, RegisterResponse, VersionInfo } from '../api/types.js';
import type { Telemetry } from './telemetry/index.js';
import { VERSION } from '../version.js';
import { TapHub } from './tap.js';
import { tapRoutes } from './tap-routes.js';
import { viewRoutes } from '../dashboard/api.js';
import type { TraceStore } from './traces.js';

export interface ControlAuth {
  /** Bearer credential for the CLI's admin calls. */
  adminToken: string;
  /** The join credential that lets a workload of namespace/serviceAccount get its first certificate. */
  joinTokenFor(namespace: string, serviceAccount: string): string;
  /**
   * Replaces the join-token check where the platform has its own workload credentials (Kubernetes: a
   * ServiceAccount token checked with a TokenReview): true when `bearer` proves namespace/serviceAccount.
   */
  bootstrap?(bearer: string, namespace: string, serviceAccount: string): Promise<boolean>;
  /**
   * Serve the read-only telemetry API (/v1/stat, /v1/edges) without the admin credential: on Kubernetes the CLI comes
   * through the API server's service proxy, which RBAC guards and which passes no credential on.
   */
  openTelemetry?: boolean;
}

export interface ControlServerOptions {
  trustDomain: string;
  trustAnchorsPem: string;
  issuer: Issuer;
  issuerCertPem: string;
  certLifetimeMs: number;
  registry: Registry;
  auth: ControlAuth;
  /** The server's own certificate (leaf and chain) and key. */
  tls: ServingTls;
  /**
   * Makes the server's own certificate from the current issuer with the current leaf lifetime (certLifetimeMs):
   * when given, the server renews its certificate at ~70% of its life and swaps it in without dropping connections.
   */
  renewTls?: MakeServingTls;
  log?: (line: string) => void;
  watchTimeoutMs?: number;
  /** Checks a config document before it is stored; throws with a message saying what is wrong. */
  validators?: Partial<Record<ConfigKind, (value: unknown, snapshot: Snapshot) => unknown>>;
  /** Scraped proxy metrics: GET /v1/stat, /v1/edges (admin). */
  telemetry?: Telemetry;
  /**
   * Re-reads the identity (anchor bundle, issuer, leaf lifetime) and makes the server's own TLS from
   * it; throws when it is unusable. POST /v1/identity/reload (admin) swaps it in without a restart.
   */
  reloadIdentity?: () => Promise<IdentityReload>;
  /** Spans received by the control plane's own collector: GET /v1/traces, /v1/traces/<id> (admin). */
  traces?: TraceStore;
}

export interface IdentityReload {
  trustAnchorsPem: string;
  issuer: Issuer;
  issuerCertPem: string;
  certLifetimeMs: number;
  tls: ServingTls;
}

const peerIds = new WeakMap<object, Identity | null>();

/** The control plane's HTTPS server; applyIdentity swaps the identity in (as POST /v1/identity/reload does). */
export type ControlServer = https.Server & { applyIdentity(next: IdentityReload): void };

export function createControlServer(o: ControlServerOptions): ControlServer {
  const watchTimeout = o.watchTimeoutMs ?? 20_000;
  const server = https.createServer({
    cert: o.tls.cert,
    key: o.tls.key,
    ca: o.trustAnchorsPem,
    requestCert: true,
    // Bootstrap calls come without a client certificate; each route decides what it needs.
    rejectUnauthorized: false,
    minVersion: 'TLSv1.3',
  });
  const installTls = (tls: ServingTls) => server.setSecureContext({ ...tls, ca: o.trustAnchorsPem, minVersion: 'TLSv1.3' });
  const renewer = o.renewTls && new ServingCertRenewer({
    make: o.renewTls,
    signer: () => ({ issuer: o.issuer, chainPem: o.issuerCertPem, lifetimeMs: o.certLifetimeMs }),
    install: installTls,
    log: o.log,
  });
  renewer?.adopt(o.tls);
  server.on('close', () => renewer?.stop());

  function peer(req: IncomingMessage): Identity | null {
    const sock = req.socket as TLSSocket;
    let id = peerIds.get(sock);
    if (id === undefined) {
      id = null;
      if (sock.authorized) {
        try {
          id = verifyPeer(sock.getPeerX509Certificate(), o.trustDomain);
        } catch {
          id = null;
        }
      }
      peerIds.set(sock, id);
    }
    return id;
  }

  function requirePeer(req: IncomingMessage): Identity {
    const id = peer(req);
    if (!id) throw new HttpError(401, 'a valid mesh client certificate is required');
    return id;
  }

  function identityInfo(): IdentityInfo {
    return { trustDomain: o.trustDomain, trustAnchors: o.trustAnchorsPem, issuer: o.issuerCertPem, certLifetimeMs: o.certLifetimeMs };
  }

  /** Validated first by the caller; now swap: new certificates come from the new issuer with the new bundle. */
  function applyIdentity(next: IdentityReload): void {
    o.trustAnchorsPem = next.trustAnchorsPem;
    o.issuer = next.issuer;
    o.issuerCertPem = next.issuerCertPem;
    o.certLifetimeMs = next.certLifetimeMs;
    installTls(next.tls);
    renewer?.adopt(next.tls);
  }

  function requireAdmin(req: IncomingMessage): void {
    if (!bearerMatches(req, o.auth.adminToken)) throw new HttpError(401, 'the admin credential is required');
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://control');
    const route = `${req.method} ${url.pathname}`;
    if (route === 'GET /v1/version') return sendJson(res, 200, { version: VERSION, trustDomain: o.trustDomain } satisfies VersionInfo);
    if (route === 'GET /ready') return sendJson(res, 200, { ready: true });
    if (route === 'POST /v1/certificates') return issueCertificate(req, res);
    if (route === 'POST /v1/endpoints') return registerEndpoint(req, res);
    if (req.method === 'DELETE' && url.pathname.startsWith('/v1/endpoints/')) {
      const id = requirePeer(req);
      const instance = decodeURIComponent(url.pathname.slice('/v1/endpoints/'.length));
      const ep = o.registry.list().find((e) => e.instance === instance);
      if (ep && ep.identity !== formatIdentity(id)) throw new HttpError(403, `${instance} belongs to another identity`);
      o.registry.remove(instance);
      return sendJson(res, 200, { removed: !!ep });
    }
    if (await tapApi(req, res, url)) return;
    if (await viewApi(req, res, url)) return;
    if (route === 'GET /v1/watch') return watch(req, res, url.searchParams.get('since') ?? '');
    if (route === 'GET /v1/endpoints') {
      requireAdmin(req);
      return sendJson(res, 200, o.registry.list());
    }
    const cfg = /^\/v1\/config\/(routes|policies|settings)$/.exec(url.pathname);
    if (cfg) {
      requireAdmin(req);
      const kind = cfg[1] as ConfigKind;
      if (req.method === 'GET') return sendConfig(res, kind);
      if (req.method === 'PUT') {
        const body = await readJsonBody<unknown>(req);
        // From here to setConfig nothing awaits: the version check and the (atomic) write are one step of this
        // single-threaded server, so no other write can come between them.
        const expected = expectedVersion(req, url);
        const current = configVersion(o.registry.getConfig(kind) ?? null);
        if (expected !== undefined && expected !== current) {
          o.log?.(`control: refused a write of the ${kind} made at resourceVersion ${expected} (now ${current})`);
          return sendJson(res, 409, conflictStatus(kind, expected, current));
        }
        let value = body;
        const validate = o.validators?.[kind];
        try {
          if (validate) value = validate(body, o.registry.snapshot);
        } catch (err) {
          throw new HttpError(422, (err as Error).message);
        }
        o.registry.setConfig(kind, value);
        return sendConfig(res, kind);
      }
    }
    if (o.telemetry?.handles(req.method, url.pathname)) {
      if (!o.auth.openTelemetry) requireAdmin(req);
      const r = await o.telemetry.handle(url);
      return sendJson(res, r.status, r.body);
    }
    if (route === 'GET /v1/identity') {
      requireAdmin(req);
      return sendJson(res, 200, identityInfo());
    }
    if (route === 'POST /v1/identity/reload') {
      requireAdmin(req);
      if (!o.reloadIdentity) throw new HttpError(404, 'this control plane cannot reload its identity');
      let next: IdentityReload;
      try {
        next = await o.reloadIdentity();
      } catch (err) {
        throw new HttpError(422, (err as Error).message);
      }
      applyIdentity(next);
      return sendJson(res, 200, identityInfo());
    }
    if (route === 'GET /v1/snapshot') {
      requireAdmin(req);
      return sendJson(res, 200, o.registry.snapshot);
    }
    throw new HttpError(404, `no such API: ${route}`);
  }

  /** A config document with the snapshot version that carries it and its own resourceVersion (also as ETag). */
  function sendConfig(res: ServerResponse, kind: ConfigKind): void {
    const value = o.registry.getConfig(kind) ?? null;
    const resourceVersion = configVersion(value);
    res.setHeader('etag', `"${resourceVersion}"`);
    sendJson(res, 200, { kind, value, version: o.registry.snapshot.version, resourceVersion });
  }

  async function bootstrapAllowed(req: IncomingMessage, namespace: string, serviceAccount: string): Promise<boolean> {
    if (!o.auth.bootstrap) return bearerMatches(req, o.auth.joinTokenFor(namespace, serviceAccount));
    const h = req.headers.authorization ?? '';
    return h.startsWith('Bearer ') && (await o.auth.bootstrap(h.slice(7), namespace, serviceAccount));
  }

  async function issueCertificate(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJsonBody<CertificateRequest>(req);
    if (typeof body.namespace !== 'string' || typeof body.serviceAccount !== 'string' || typeof body.csr !== 'string') {
      throw new HttpError(400, 'namespace, serviceAccount and csr are required');
    }
    const want: Identity = { trustDomain: o.trustDomain, namespace: body.namespace, serviceAccount: body.serviceAccount };
    const wantUri = formatIdentity(want);
    if (!parseIdentity(wantUri)) throw new HttpError(400, `invalid identity ${wantUri}`);
    // Renewal with the current certificate, or bootstrap with the join credential for exactly this identity.
    const current = peer(req);
    const renewing = current !== null && formatIdentity(current) === wantUri;
    if (!renewing && !(await bootstrapAllowed(req, body.namespace, body.serviceAccount))) {
      throw new HttpError(403, `not authorized to obtain identity ${wantUri}`);
    }
    let certificate: string;
    try {
      certificate = o.issuer.signCsr(body.csr, wantUri, o.certLifetimeMs);
    } catch (err) {
      throw new HttpError(400, (err as Error).message);
    }
    sendJson(res, 200, { identity: wantUri, certificate, chain: [o.issuerCertPem], trustAnchors: o.trustAnchorsPem } satisfies CertificateResponse);
  }

  async function registerEndpoint(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const id = requirePeer(req);
    const b = await readJsonBody<Partial<EndpointRecord>>(req);
    for (const [k, v] of Object.entries({ instance: b.instance, service: b.service, namespace: b.namespace, version: b.version })) {
      try {
        checkName(String(v ?? ''), k);
      } catch (err) {
        throw new HttpError(400, (err as Error).message);
      }
    }
    if (b.namespace !== id.namespace || b.service !== id.serviceAccount) {
      throw new HttpError(403, `identity ${formatIdentity(id)} cannot register endpoints of ${b.namespace}/${b.service}`);
    }
    const ingress = b.role === 'ingress';
    const noInbound = ingress || b.role === 'client';
    if (!Number.isInteger(b.port) || b.port! < (noInbound ? 0 : 1) || b.port! > 65535) throw new HttpError(400, 'port must be 1-65535');
    const existing = o.registry.list().find((e) => e.instance === b.instance);
    if (existing && existing.identity !== formatIdentity(id)) throw new HttpError(409, `instance ${b.instance} is taken`);
    o.registry.upsert({
      instance: b.instance!,
      namespace: b.namespace!,
      service: b.service!,
      version: b.version!,
      address: '127.0.0.1',
      port: b.port!,
      identity: formatIdentity(id),
      pid: typeof b.pid === 'number' ? b.pid : undefined,
      admin: typeof b.admin === 'string' ? b.admin : undefined,
      configVersion: typeof b.configVersion === 'string' ? b.configVersion : undefined,
      role: ingress ? 'ingress' : b.role === 'client' ? 'client' : 'sidecar',
      registeredAt: existing?.registeredAt ?? new Date().toISOString(),
    });
    sendJson(res, 200, { ok: true, version: o.registry.snapshot.version } satisfies RegisterResponse);
  }

  function watch(req: IncomingMessage, res: ServerResponse, since: string): void {
    requirePeer(req);
    if (o.registry.snapshot.version !== since) return sendJson(res, 200, o.registry.snapshot);
    const done = () => {
      clearTimeout(timer);
      o.registry.off('change', onChange);
      res.off('close', done);
    };
    const onChange = () => {
      done();
      sendJson(res, 200, o.registry.snapshot);
    };
    const timer = setTimeout(() => {
      done();
      res.writeHead(204).end();
    }, watchTimeout);
    o.registry.on('change', onChange);
    res.on('close', done);
  }

  const taps = new TapHub(() => o.registry.list(), () => tapRedactions(o.registry.getConfig('settings')));
  const tapApi = tapRoutes(taps, () => o.registry.list(), { admin: requireAdmin, peer: requirePeer });
  server.on('close', () => taps.close());
  const viewApi = viewRoutes({ registry: o.registry, telemetry: o.telemetry, traces: o.traces, reader: (req) => o.auth.openTelemetry || requireAdmin(req) });

  o.registry.setMaxListeners(0);
  server.on('request', (req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (!res.headersSent) sendJson(res, status, { error: (err as Error).message });
      else res.destroy();
    });
  });
  return Object.assign(server, { applyIdentity });
}

/** Header names the settings add to what tap always redacts: settings.tap.redactHeaders. */
function tapRedactions(settings: unknown): string[] {
  const list = (settings as { tap?: { redactHeaders?: unknown } } | undefined)?.tap?.redactHeaders;
  return Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string').map((x) => x.toLowerCase()) : [];
}

function bearerMatches(req: IncomingMessage, expected: string): boolean {
  const h = req.headers.authorization ?? '';
  if (!h.startsWith('Bearer ')) return false;
  const got = Buffer.from(h.slice(7));
  const want = Buffer.from(expected);
  return got.length === want.length && timingSafeEqual(got, want);
}
