// The identity part of the control plane's API: certificates for workloads (POST /v1/certificates), the identity
// it serves (GET /v1/identity) and its reload (POST /v1/identity/reload), and the unguarded version and readiness.
import type { IncomingMessage } from 'node:http';
import { formatIdentity, parseIdentity, type Identity } from '../identity/spiffe.js';
import { HttpError, readJsonBody, sendJson } from '../util/http.js';
import type { CertificateRequest, CertificateResponse, IdentityInfo, VersionInfo } from '../api/types.js';
import { VERSION } from '../version.js';
import type { Route } from './router.js';
import type { ControlServerOptions, IdentityReload } from './server.js';

export interface IdentityRouteDeps {
  /** The server's options: the identity fields change on a reload. */
  o: ControlServerOptions;
  /** The caller's mesh identity, if its certificate is valid. */
  peer(req: IncomingMessage): Identity | null;
  /** Whether the request's bearer is this exact credential. */
  bearerIs(req: IncomingMessage, expected: string): boolean;
  applyIdentity(next: IdentityReload): void;
}

export function identityRoutes(d: IdentityRouteDeps): Route[] {
  const { o } = d;
  const identityInfo = (): IdentityInfo => ({ trustDomain: o.trustDomain, trustAnchors: o.trustAnchorsPem, issuer: o.issuerCertPem, certLifetimeMs: o.certLifetimeMs });

  async function bootstrapAllowed(req: IncomingMessage, namespace: string, serviceAccount: string): Promise<boolean> {
    if (!o.auth.bootstrap) return d.bearerIs(req, o.auth.joinTokenFor(namespace, serviceAccount));
    const h = req.headers.authorization ?? '';
    return h.startsWith('Bearer ') && (await o.auth.bootstrap(h.slice(7), namespace, serviceAccount));
  }

  return [
    { method: 'GET', path: '/v1/version', who: 'anyone', handle: ({ res }) => sendJson(res, 200, { version: VERSION, trustDomain: o.trustDomain } satisfies VersionInfo) },
    { method: 'GET', path: '/ready', who: 'anyone', handle: ({ res }) => sendJson(res, 200, { ready: true }) },
    // Renewal with the current certificate, or bootstrap with the join credential for exactly this identity.
    {
      method: 'POST', path: '/v1/certificates', who: 'anyone', async handle({ req, res }) {
        const body = await readJsonBody<CertificateRequest>(req);
        if (typeof body.namespace !== 'string' || typeof body.serviceAccount !== 'string' || typeof body.csr !== 'string') {
          throw new HttpError(400, 'namespace, serviceAccount and csr are required');
        }
        const wantUri = formatIdentity({ trustDomain: o.trustDomain, namespace: body.namespace, serviceAccount: body.serviceAccount });
        if (!parseIdentity(wantUri)) throw new HttpError(400, `invalid identity ${wantUri}`);
        const current = d.peer(req);
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
      },
    },
    { method: 'GET', path: '/v1/identity', who: 'reader', handle: ({ res }) => sendJson(res, 200, identityInfo()) },
    {
      method: 'POST', path: '/v1/identity/reload', who: 'admin', async handle({ res }) {
        if (!o.reloadIdentity) throw new HttpError(404, 'this control plane cannot reload its identity');
        let next: IdentityReload;
        try {
          next = await o.reloadIdentity();
        } catch (err) {
          throw new HttpError(422, (err as Error).message);
        }
        d.applyIdentity(next);
        sendJson(res, 200, identityInfo());
      },
    },
  ];
}
