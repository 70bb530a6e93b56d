// `mesh identity` on the local platform: the certificate authority's files in the state directory, rotated
// without a restart (rotation.ts), and the control plane asked to load them again.
import { bundleCerts, validTo } from '../../identity/chain.js';
import { MeshError } from '../../util/errors.js';
import { rotationState } from './identity.js';
import { adminRequest, rotateAnchor, rotateIssuer } from './rotation.js';
import type { StateDir } from './state.js';
import type { CertSummary, IdentityOps } from '../index.js';

function describeCert(pem: string): CertSummary[] {
  return bundleCerts(pem).map((c) => ({ subject: c.subject.replace(/\n/g, ', '), notBefore: new Date(c.validFrom).toISOString(), notAfter: new Date(validTo(c)).toISOString(), fingerprint: c.fingerprint256 }));
}

export function localIdentity(state: StateDir): IdentityOps {
  return {
    show() {
      const cfg = state.config();
      const trustAnchors = describeCert(state.readSecret(state.anchorCertPath, 'the trust anchor'));
      const issuer = describeCert(state.readSecret(state.issuerCertPath, 'the issuer certificate'))[0]!;
      return { trustDomain: cfg.trustDomain, certLifetimeMs: cfg.certLifetimeMs, trustAnchors, issuer, rotation: rotationState(state) ?? null };
    },
    rotateIssuer: (o) => rotateIssuer(state, o),
    rotateAnchor: (phase, o) => rotateAnchor(state, phase, o),
    async reload() {
      const r = await adminRequest<{ error?: string }>(state, 'POST', '/v1/identity/reload');
      if (!r) throw new MeshError(`no control plane is answering for ${state.display}`, "start it with 'mesh install'");
      if (r.status !== 200) throw new MeshError(`the control plane refused the identity: ${r.body?.error ?? `HTTP ${r.status}`}`, 'it keeps the identity it has; fix the files in identity/');
    },
  };
}
