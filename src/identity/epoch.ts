// The snapshot's identity epoch: a short name for the trust anchors and issuer certificates are signed under.
// Proxies renew at once when it changes (a rotation), instead of at 70% of their certificate's life.
import { createHash } from 'node:crypto';

/** Names the identity a proxy's certificate should come from: trust anchors and issuer (whitespace aside). */
export function identityEpoch(anchorsPem: string, issuerCertPem: string): string {
  return createHash('sha256').update(anchorsPem.replace(/\s+/g, '')).update(issuerCertPem.replace(/\s+/g, '')).digest('hex').slice(0, 16);
}
