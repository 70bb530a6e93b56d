// The mesh's certificate authority: trust anchor → issuer → short-lived workload certificates.
// node-forge builds and signs (RSA only); keys come from node:crypto, which is ~20× faster.
import { createPublicKey, randomBytes } from 'node:crypto';
import forge from 'node-forge';
import { generateKey, DAY, type CertAndKey } from './keys.js';
import { buildCsr } from './der.js';
import { weakKeyReason } from './spiffe.js';

export { generateKey, certInfo, splitPem, DAY, type KeyPair, type CertAndKey } from './keys.js';

const pki = forge.pki;

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive
  return b.toString('hex');
}

interface SignOptions {
  subjectCN: string;
  publicKeyPem: string;
  issuer?: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey };
  selfKey?: forge.pki.rsa.PrivateKey;
  lifetimeMs: number;
  ca: boolean;
  pathLen?: number;
  uris?: string[];
  dnsNames?: string[];
  ips?: string[];
  notBefore?: Date;
}

function sign(o: SignOptions): string {
  const cert = pki.createCertificate();
  cert.publicKey = pki.publicKeyFromPem(o.publicKeyPem);
  cert.serialNumber = serial();
  // Back-dating absorbs clock differences between processes; short test lifetimes get less of it
  // so that renewal at 70% of the validity stays ahead of the issue time.
  const backdate = o.notBefore ? 0 : Math.min(60_000, Math.floor(o.lifetimeMs / 10));
  const nb = o.notBefore ?? new Date(Date.now() - backdate);
  cert.validity.notBefore = nb;
  cert.validity.notAfter = new Date(nb.getTime() + backdate + o.lifetimeMs);
  const subject = [{ name: 'commonName', value: o.subjectCN }];
  cert.setSubject(subject);
  cert.setIssuer(o.issuer ? o.issuer.cert.subject.attributes : subject);
  const exts: object[] = [
    o.ca
      ? { name: 'basicConstraints', cA: true, critical: true, ...(o.pathLen !== undefined ? { pathLenConstraint: o.pathLen } : {}) }
      : { name: 'basicConstraints', cA: false, critical: true },
    o.ca
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }
      : { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ];
  if (o.issuer) {
    exts.push({ name: 'authorityKeyIdentifier', keyIdentifier: o.issuer.cert.generateSubjectKeyIdentifier().getBytes() });
  }
  if (!o.ca) exts.push({ name: 'extKeyUsage', serverAuth: true, clientAuth: true });
  const alt = [
    ...(o.uris ?? []).map((value) => ({ type: 6, value })),
    ...(o.dnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(o.ips ?? []).map((ip) => ({ type: 7, ip })),
  ];
  if (alt.length) exts.push({ name: 'subjectAltName', critical: !o.subjectCN, altNames: alt });
  cert.setExtensions(exts);
  cert.sign(o.issuer?.key ?? o.selfKey!, forge.md.sha256.create());
  return pki.certificateToPem(cert);
}

export async function createTrustAnchor(trustDomain: string, lifetimeMs = 365 * DAY): Promise<CertAndKey> {
  const kp = await generateKey();
  const certPem = sign({
    subjectCN: `root.${trustDomain}`,
    publicKeyPem: kp.publicKeyPem,
    selfKey: pki.privateKeyFromPem(kp.keyPem),
    lifetimeMs,
    ca: true,
  });
  return { certPem, keyPem: kp.keyPem };
}

/** `notBefore` places the validity elsewhere in time (an issuer that has already expired, for checks). */
export async function createIssuer(trustDomain: string, anchor: CertAndKey, lifetimeMs = 365 * DAY, notBefore?: Date): Promise<CertAndKey> {
  const kp = await generateKey();
  const certPem = sign({
    subjectCN: `identity.${trustDomain}`,
    publicKeyPem: kp.publicKeyPem,
    issuer: { cert: pki.certificateFromPem(anchor.certPem), key: pki.privateKeyFromPem(anchor.keyPem) },
    lifetimeMs,
    notBefore,
    ca: true,
    pathLen: 0,
  });
  return { certPem, keyPem: kp.keyPem };
}

/** Signs leaves; parses the issuer once, since every renewal goes through here. */
export class Issuer {
  private readonly cert: forge.pki.Certificate;
  private readonly key: forge.pki.rsa.PrivateKey;

  constructor(readonly issuer: CertAndKey) {
    this.cert = pki.certificateFromPem(issuer.certPem);
    this.key = pki.privateKeyFromPem(issuer.keyPem);
  }

  issueLeaf(o: { uri: string; publicKeyPem: string; lifetimeMs: number; dnsNames?: string[]; ips?: string[]; notBefore?: Date }): string {
    return sign({
      subjectCN: o.uri.replace(/^spiffe:\/\//, '').slice(0, 64),
      publicKeyPem: o.publicKeyPem,
      issuer: { cert: this.cert, key: this.key },
      lifetimeMs: o.lifetimeMs,
      ca: false,
      uris: [o.uri],
      dnsNames: o.dnsNames,
      ips: o.ips,
      notBefore: o.notBefore,
    });
  }

  /** Signs a CSR's key after checking the CSR was signed by that key; the CSR's names are ignored. */
  signCsr(csrPem: string, uri: string, lifetimeMs: number): string {
    let csr: ReturnType<typeof pki.certificationRequestFromPem>;
    try {
      csr = pki.certificationRequestFromPem(csrPem);
    } catch {
      throw new Error('certificate request is not a valid PEM CSR');
    }
    let ok = false;
    try {
      ok = csr.verify();
    } catch {
      ok = false;
    }
    if (!ok) throw new Error('certificate request signature does not verify');
    const publicKeyPem = pki.publicKeyToPem(csr.publicKey as forge.pki.rsa.PublicKey);
    const weak = weakKeyReason(createPublicKey(publicKeyPem));
    if (weak) throw new Error(`certificate request has ${weak}`);
    return this.issueLeaf({ uri, publicKeyPem, lifetimeMs });
  }
}

/** A CSR for a key pair (the proxy builds the same with ./der.js, without node-forge). */
export function createCsr(kp: { keyPem: string }, cn: string): string {
  return buildCsr(kp.keyPem, cn);
}
