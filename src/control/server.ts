// The control plane's HTTPS server: its TLS (renewed serving certificate, client certificates asked for but not
// required), who is calling (mesh identity, admin credential), and its API as one table of routes (router.ts):
// identity-routes.ts, mesh-routes.ts, tap-routes.ts, telemetry and the dashboard's views.
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { timingSafeEqual, X509Certificate } from 'node:crypto';
import { verifyPeer, type Identity } from '../identity/spiffe.js';
import type { Issuer } from '../identity/ca.js';
import { ServingCertRenewer, type MakeServingTls, type ServingTls } from './serving-cert.js';
import type { ConfigKind, Snapshot } from '../model/snapshot.js';
import { HttpError, sendJson } from '../util/http.js';
import type { Registry } from './registry.js';
import type { EndpointRecord } from '../api/types.js';
import type { Telemetry } from './telemetry/index.js';
import { TapHub } from './tap.js';
import { tapRoutes } from './tap-routes.js';
import { viewRoutes } from './view-routes.js';
import type { TraceStore } from './traces.js';
import { traceIngestRoutes } from './trace-ingest.js';
import { routeTable, type Route } from './router.js';
import { identityRoutes } from './identity-routes.js';
import { ADMIN_CALLER, type TapAccess } from './tap-access.js';
import { meshRoutes } from './mesh-routes.js';

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
  /**
   * Taps by platform users besides the admin (Kubernetes: the caller's own bearer token, a TokenReview, then a
   * SubjectAccessReview per tap). Without it only the admin credential taps.
   */
  tap?: TapAccess;
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
  /** Every proxy the platform runs, for tap (Kubernetes: every meshed pod); default the registered ones. */
  proxies?: () => EndpointRecord[];
}

/** What the control plane signs with and hands out. */
export interface ControlIdentity {
  trustAnchorsPem: string;
  issuerCertPem: string;
  issuer: Issuer;
  /** The lifetime of the certificates it issues (and of its own serving certificate). */
  certLifetimeMs: number;
}

/** An identity to put into service, with a serving certificate from its issuer. */
export interface IdentityReload extends ControlIdentity {
  tls: ServingTls;
}

const peerIds = new WeakMap<object, Identity | null>();

/** The control plane's HTTPS server; applyIdentity swaps the identity in (as POST /v1/identity/reload does). */
export type ControlServer = https.Server & { applyIdentity(next: IdentityReload): void };

export function createControlServer(o: ControlServerOptions): ControlServer {
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

  /** Validated first by the caller; now swap: new certificates come from the new issuer with the new bundle. */
  function applyIdentity(next: IdentityReload): void {
    o.trustAnchorsPem = next.trustAnchorsPem;
    o.issuer = next.issuer;
    o.issuerCertPem = next.issuerCertPem;
    o.certLifetimeMs = next.certLifetimeMs;
    installTls(next.tls);
    renewer?.adopt(next.tls);
  }

  const admin = (req: IncomingMessage): void => {
    if (!bearerMatches(req, o.auth.adminToken)) throw new HttpError(401, 'the admin credential is required');
  };
  const proxies = () => (o.proxies?.() ?? o.registry.list()).filter((e) => e.meshed !== false);
  const taps = new TapHub(proxies, () => tapRedactions(o.registry.getConfig('settings')));
  server.on('close', () => taps.close());
  const routes: Route[] = [
    ...identityRoutes({ o, peer, bearerIs: bearerMatches, applyIdentity }),
    ...meshRoutes(o),
    ...tapRoutes(taps, proxies, o.auth.tap),
    ...(o.telemetry?.routes() ?? []),
    ...viewRoutes({ registry: o.registry, telemetry: o.telemetry, traces: o.traces }),
    ...traceIngestRoutes(o.traces),
  ];
  const handle = routeTable(routes, {
    proxy(req) {
      const id = peer(req);
      if (!id) throw new HttpError(401, 'a valid mesh client certificate is required');
      return id;
    },
    admin,
    reader: (req) => o.auth.openTelemetry || admin(req),
    async tapper(req) {
      if (bearerMatches(req, o.auth.adminToken)) return ADMIN_CALLER;
      const h = req.headers.authorization ?? '';
      const tap = o.auth.tap;
      if (!tap) throw new HttpError(401, 'the admin credential is required');
      if (h.startsWith('Bearer ')) {
        const user = await tap.authenticate(h.slice(7));
        if (!user) throw new HttpError(401, 'the Kubernetes API server did not accept your token (TokenReview)');
        return user;
      }
      const sock = req.socket as TLSSocket;
      // One the mesh's anchors verify is a workload's: never a platform user (their CAs are kept apart).
      if (sock.authorized) throw new HttpError(401, 'a mesh workload certificate is not a Kubernetes user: tap needs your kubeconfig user\'s client certificate or token');
      const chain = tap.certificate ? peerChain(sock) : [];
      if (!chain.length) throw new HttpError(401, 'tap needs your credential: a client certificate or a bearer token the Kubernetes API server accepts');
      const r = tap.certificate!(chain);
      if ('refused' in r) throw new HttpError(401, `your client certificate was refused: ${r.refused}`);
      return r;
    },
  });

  o.registry.setMaxListeners(0);
  server.on('request', (req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      // A certificate is judged once per connection: a refused caller must come back on a new one.
      if (status === 401) res.shouldKeepAlive = false;
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

/** The certificates the peer sent, leaf first (the handshake did not verify them: not under the mesh's anchors). */
function peerChain(sock: TLSSocket): X509Certificate[] {
  const out: X509Certificate[] = [];
  let c = sock.getPeerCertificate(true) as DetailedPeerCertificate | undefined;
  while (c?.raw && out.length < 5) {
    out.push(new X509Certificate(c.raw));
    if (!c.issuerCertificate || c.issuerCertificate === c) break;
    c = c.issuerCertificate;
  }
  return out;
}

function bearerMatches(req: IncomingMessage, expected: string): boolean {
  const h = req.headers.authorization ?? '';
  if (!h.startsWith('Bearer ')) return false;
  const got = Buffer.from(h.slice(7));
  const want = Buffer.from(expected);
  return got.length === want.length && timingSafeEqual(got, want);
}
