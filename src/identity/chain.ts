// Facts about the identity chain (trust anchor bundle → issuer) through node:crypto: what the
// control plane checks before it loads a new issuer, and what `mesh check` reports.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { splitPem } from './keys.js';

/** The certificates of a PEM bundle; throws when one cannot be parsed. */
export function bundleCerts(pem: string): X509Certificate[] {
  return splitPem(pem).map((p) => new X509Certificate(p));
}

/** The anchor in the bundle that signed `cert`, if any. */
export function signerIn(cert: X509Certificate, anchors: X509Certificate[]): X509Certificate | undefined {
  return anchors.find((a) => cert.checkIssued(a) && cert.verify(a.publicKey));
}

export function keyMatches(cert: X509Certificate, keyPem: string): boolean {
  try {
    return cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/** The certificate in the bundle whose key is `keyPem` (the anchor that can sign issuers). */
export function certForKey(certs: X509Certificate[], keyPem: string): X509Certificate | undefined {
  return certs.find((c) => keyMatches(c, keyPem));
}

export const validFrom = (c: X509Certificate) => new Date(c.validFrom).getTime();
export const validTo = (c: X509Certificate) => new Date(c.validTo).getTime();

/** Why the certificate is not valid at `now`, or undefined. */
export function validityError(c: X509Certificate, what: string, now: number): string | undefined {
  if (now < validFrom(c)) return `${what} is not valid before ${new Date(validFrom(c)).toISOString()}`;
  if (now > validTo(c)) return `${what} expired on ${new Date(validTo(c)).toISOString()}`;
  return undefined;
}

export interface IdentityMaterial {
  anchorsPem: string;
  issuerCertPem: string;
  issuerKeyPem: string;
}

/**
 * Everything that would make the control plane sign certificates nobody trusts: each anchor a CA,
 * the issuer a CA signed by one of them, its key matching, all within validity at `now`.
 */
export function identityErrors(m: IdentityMaterial, now = Date.now()): string[] {
  const errors: string[] = [];
  let anchors: X509Certificate[];
  try {
    anchors = bundleCerts(m.anchorsPem);
  } catch {
    return ['the trust anchor bundle holds a certificate that cannot be parsed'];
  }
  if (!anchors.length) return ['the trust anchor bundle holds no certificate'];
  anchors.forEach((a, i) => {
    if (!a.ca) errors.push(`trust anchor ${i + 1} is not a CA certificate`);
    const v = validityError(a, `trust anchor ${i + 1}`, now);
    if (v) errors.push(v);
  });
  let issuer: X509Certificate;
  try {
    issuer = new X509Certificate(m.issuerCertPem);
  } catch {
    return [...errors, 'the issuer certificate cannot be parsed'];
  }
  if (!issuer.ca) errors.push('the issuer certificate is not a CA certificate');
  if (!signerIn(issuer, anchors)) errors.push('the issuer certificate is not signed by any trust anchor in the bundle');
  if (!keyMatches(issuer, m.issuerKeyPem)) errors.push('the issuer key does not belong to the issuer certificate');
  const v = validityError(issuer, 'the issuer certificate', now);
  if (v) errors.push(v);
  return errors;
}
