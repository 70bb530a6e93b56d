// SPIFFE identities (spiffe://<trust-domain>/ns/<ns>/sa/<sa>) and the peer checks Node's TLS leaves to us.
import { X509Certificate, type KeyObject } from 'node:crypto';
import { readUriSans } from './der.js';

export interface Identity {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

const ID_RE = /^spiffe:\/\/([a-z0-9.\-_]+)\/ns\/([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/sa\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/;

export function formatIdentity(id: Identity): string {
  return `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

export function parseIdentity(uri: string): Identity | undefined {
  const m = ID_RE.exec(uri);
  return m ? { trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[4]! } : undefined;
}

/** URI SANs read from the DER itself: Node's subjectAltName text is not safe to split. */
export const uriSans = readUriSans;

export class PeerIdentityError extends Error {}

/** The weakest keys the mesh accepts anywhere (NIST's 112-bit floor): RSA-2048, or EC P-256. */
export const MIN_RSA_BITS = 2048;
const STRONG_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1']);

/** Why a public key is too weak for the mesh, or undefined when it is strong enough. */
export function weakKeyReason(key: KeyObject): string | undefined {
  const type = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails ?? {};
  if (type === 'rsa' || type === 'rsa-pss') {
    return (d.modulusLength ?? 0) < MIN_RSA_BITS ? `an RSA-${d.modulusLength ?? '?'} key (the mesh needs RSA-${MIN_RSA_BITS} or more, or EC P-256)` : undefined;
  }
  if (type === 'ec') return STRONG_CURVES.has(d.namedCurve ?? '') ? undefined : `an EC key on curve ${d.namedCurve ?? '?'} (the mesh needs P-256, P-384 or P-521)`;
  if (type === 'ed25519' || type === 'ed448') return undefined;
  return `a ${type ?? 'unknown'} key (the mesh needs RSA-${MIN_RSA_BITS} or more, or EC P-256)`;
}

// Verification is per connection, and pooled connections make it rare; a small cache keeps even that cheap.
const verified = new Map<string, Identity>();

/**
 * The checks SPIFFE requires and Node's TLS does not make: the chain itself was already verified
 * against the trust anchor by the handshake.
 */
export function verifyPeer(cert: X509Certificate | undefined, trustDomain: string): Identity {
  if (!cert) throw new PeerIdentityError('peer presented no certificate');
  const key = cert.fingerprint256;
  const hit = verified.get(key);
  if (hit && hit.trustDomain === trustDomain) return hit;
  if (cert.ca) throw new PeerIdentityError('peer leaf certificate is a CA');
  const weak = weakKeyReason(cert.publicKey);
  if (weak) throw new PeerIdentityError(`peer certificate has ${weak}`);
  let sans: string[];
  try {
    sans = uriSans(cert.raw);
  } catch {
    throw new PeerIdentityError('peer certificate cannot be parsed');
  }
  const spiffe = sans.filter((s) => s.toLowerCase().startsWith('spiffe://'));
  if (spiffe.length !== 1 || sans.length !== 1) {
    throw new PeerIdentityError(`peer certificate must have exactly one SPIFFE URI SAN, has ${sans.length}`);
  }
  const id = parseIdentity(spiffe[0]!);
  if (!id) throw new PeerIdentityError(`peer identity ${spiffe[0]} is not a mesh SPIFFE ID`);
  if (id.trustDomain !== trustDomain) {
    throw new PeerIdentityError(`peer trust domain ${id.trustDomain} is not ${trustDomain}`);
  }
  if (verified.size > 1024) verified.clear();
  verified.set(key, id);
  return id;
}
