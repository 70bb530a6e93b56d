// The identity a Kubernetes install ships: the trust anchor and issuer (generated, or given as files and checked),
// and the webhook's serving certificate with the CA bundle the API server trusts it by.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DAY, Issuer, createIssuer, createTrustAnchor, splitPem } from '../../identity/ca.js';
import { formatIdentity } from '../../identity/spiffe.js';
import { MeshError } from '../../util/errors.js';
import { CONTROL_NAME, CONTROL_NAMESPACE, webhookDnsNames } from './names.js';
import type { InstallValues } from './manifests.js';

/** node-forge writes PEM with CRLF; manifests and files carry LF. */
const lf = (pem: string) => pem.replace(/\r\n/g, '\n');

export type IdentityValues = InstallValues['identity'];
export type WebhookValues = InstallValues['webhook'];

export interface IdentityFiles {
  trustAnchorsFile?: string;
  issuerCertificateFile?: string;
  issuerKeyFile?: string;
}

function read(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    throw new MeshError(`cannot read ${what} ${file}`, 'pass a readable PEM file');
  }
}

function parse(pem: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new MeshError(`${what} is not a PEM certificate`, 'pass the certificate in PEM form');
  }
}

/** Checks the issuer can serve: a CA, signed by one of the anchors, within validity, with the matching key. */
export function validateIdentity(v: IdentityValues, now = new Date()): void {
  const anchors = splitPem(v.trustAnchorsPem).map((p, i) => parse(p, `trust anchor #${i + 1}`));
  if (!anchors.length) throw new MeshError('the trust anchors file holds no certificate', 'pass a PEM bundle with the root certificate(s)');
  const issuer = parse(v.issuerCertPem, 'the issuer certificate');
  if (!issuer.ca) throw new MeshError('the issuer certificate is not a CA (basicConstraints CA:true is missing)', 'issue it with CA:true and pathlen 0');
  for (const a of anchors) if (!a.ca) throw new MeshError(`trust anchor ${a.subject.replace(/\n/g, ', ')} is not a CA`, 'pass the root certificate');
  if (!anchors.some((a) => issuer.checkIssued(a) && issuer.verify(a.publicKey))) {
    throw new MeshError('the issuer certificate is not signed by the trust anchor', 'pass the issuer that the given trust anchor signed');
  }
  if (new Date(issuer.validTo) <= now) throw new MeshError(`the issuer certificate expired on ${new Date(issuer.validTo).toISOString()}`, 'issue a new one from the trust anchor');
  if (new Date(issuer.validFrom) > now) throw new MeshError('the issuer certificate is not valid yet', 'check the clocks, or issue it again');
  let key;
  try {
    key = createPrivateKey(v.issuerKeyPem);
  } catch {
    throw new MeshError('the issuer key is not a PEM private key', 'pass the key of the issuer certificate');
  }
  if (!issuer.checkPrivateKey(key)) throw new MeshError('the issuer key does not belong to the issuer certificate', 'pass the matching key');
  // mesh signs with node-forge, which takes RSA keys only.
  if (key.asymmetricKeyType !== 'rsa') throw new MeshError(`the issuer key is ${key.asymmetricKeyType?.toUpperCase()}; mesh signs with RSA keys`, 'issue an RSA issuer');
}

/** The identity given as files (all three, checked), or undefined when none is given; a partial set is an error. */
export function loadIdentityFiles(f: IdentityFiles): IdentityValues | undefined {
  const given = [f.trustAnchorsFile, f.issuerCertificateFile, f.issuerKeyFile].filter(Boolean).length;
  if (given === 0) return undefined;
  if (given < 3) {
    throw new MeshError('pass all of --identity-trust-anchors-file, --identity-issuer-certificate-file and --identity-issuer-key-file, or none',
      'without them mesh generates a trust anchor and issuer');
  }
  const identity = {
    trustAnchorsPem: read(f.trustAnchorsFile!, 'trust anchors'),
    issuerCertPem: read(f.issuerCertificateFile!, 'issuer certificate'),
    issuerKeyPem: read(f.issuerKeyFile!, 'issuer key'),
  };
  validateIdentity(identity);
  return identity;
}

/** A new trust anchor (1 year, like Linkerd's) and issuer; the anchor's key is not kept. */
export async function generateIdentity(trustDomain: string): Promise<IdentityValues> {
  const anchor = await createTrustAnchor(trustDomain, 365 * DAY);
  const issuer = await createIssuer(trustDomain, anchor, 365 * DAY);
  return { trustAnchorsPem: lf(anchor.certPem), issuerCertPem: lf(issuer.certPem), issuerKeyPem: lf(issuer.keyPem) };
}

/** The webhook's serving certificate for the control plane's Service names, from a CA of its own. */
export async function generateWebhookCert(trustDomain: string): Promise<WebhookValues> {
  const ca = await createTrustAnchor(`webhook.${CONTROL_NAMESPACE}`, 365 * DAY);
  const { generateKey } = await import('../../identity/keys.js');
  const kp = await generateKey();
  const certPem = new Issuer(ca).issueLeaf({
    uri: formatIdentity({ trustDomain, namespace: CONTROL_NAMESPACE, serviceAccount: CONTROL_NAME }),
    publicKeyPem: kp.publicKeyPem,
    lifetimeMs: 365 * DAY,
    dnsNames: webhookDnsNames(),
  });
  return { caPem: lf(ca.certPem), certPem: lf(certPem), keyPem: lf(kp.keyPem) };
}

/** The anchors' fingerprints, to tell one install from another. */
export function anchorFingerprints(pem: string): string[] {
  return splitPem(pem).map((p) => new X509Certificate(p).fingerprint256).sort();
}
