// SPIFFE identities (spiffe://<trust-domain>/ns/<ns>/sa/<sa>) and the peer checks Node's TLS leaves to us.
import { X509Certificate } from 'node:crypto';
import forge from 'node-forge';

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

const SAN_OID = '2.5.29.17';
const URI_TAG = 6;

/** URI SANs read from the DER itself: Node's subjectAltName text is not safe to split. */
export function uriSans(der: Buffer): string[] {
  const cert = forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary')));
  const tbs = (cert.value as forge.asn1.Asn1[])[0]!;
  const extsWrapper = (tbs.value as forge.asn1.Asn1[]).find(
    (n) => n.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && n.type === 3,
  );
  if (!extsWrapper) return [];
  const exts = ((extsWrapper.value as forge.asn1.Asn1[])[0]!.value as forge.asn1.Asn1[]) ?? [];
  const out: string[] = [];
  for (const ext of exts) {
    const parts = ext.value as forge.asn1.Asn1[];
    if (forge.asn1.derToOid(parts[0]!.value as string) !== SAN_OID) continue;
    const octets = parts[parts.length - 1]!.value as string;
    const names = forge.asn1.fromDer(octets).value as forge.asn1.Asn1[];
    for (const n of names) {
      if (n.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && n.type === URI_TAG) out.push(n.value as string);
    }
  }
  return out;
}

export class PeerIdentityError extends Error {}

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
