// A throwaway serving certificate for 127.0.0.1/localhost that the kubeconfig trusts as its CA. The key comes from
// node:crypto (native); node-forge only builds and signs the certificate. Generated once per process and reused.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface ServingCert {
  caPem: string;
  certPem: string;
  keyPem: string;
}

let cached: ServingCert | undefined;

function rsaKeys(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; pem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(pem) as forge.pki.rsa.PrivateKey;
  return { privateKey: forgeKey, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e), pem };
}

function newCert(publicKey: forge.pki.rsa.PublicKey, cn: string): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // Positive serial: leading byte below 0x80.
  cert.serialNumber = '01' + randomBytes(15).toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 60 * 60 * 1000);
  cert.validity.notAfter = new Date(Date.now() + 365 * 24 * 60 * 60 * 1000);
  cert.setSubject([{ name: 'commonName', value: cn }]);
  return cert;
}

/**
 * One self-signed certificate that is both the serving certificate and the CA the kubeconfig trusts: a single RSA
 * key generation (the slow part) per process instead of two.
 */
export function servingCert(): ServingCert {
  if (cached) return cached;
  const key = rsaKeys();
  const cert = newCert(key.publicKey, 'kube-apiserver');
  cert.setIssuer(cert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectKeyIdentifier' },
    {
      name: 'subjectAltName',
      altNames: [
        { type: 2, value: 'localhost' },
        { type: 2, value: 'kubernetes' },
        { type: 2, value: 'kubernetes.default.svc' },
        { type: 2, value: 'kubernetes.default.svc.cluster.local' },
        { type: 7, ip: '127.0.0.1' },
      ],
    },
  ]);
  cert.sign(key.privateKey, forge.md.sha256.create());
  const pem = forge.pki.certificateToPem(cert);
  cached = { caPem: pem, certPem: pem, keyPem: key.pem };
  return cached;
}

export interface ClientCa {
  certPem: string;
  keyPem: string;
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
}

const clientCas = new Map<string, ClientCa>();

/** A CA from its certificate and (RSA) key, e.g. a real cluster's, to sign client certificates with. */
export function caFromPem(certPem: string, keyPem: string): ClientCa {
  return { certPem, keyPem, cert: forge.pki.certificateFromPem(certPem), key: forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey };
}

/** A CA for client certificates, as a cluster's client-ca-file (one per name, per process); with `parent`, an intermediate. */
export function clientCa(name = 'kubernetes-client-ca', parent?: ClientCa): ClientCa {
  const hit = clientCas.get(name);
  if (hit) return hit;
  const key = rsaKeys();
  const cert = newCert(key.publicKey, name);
  cert.setIssuer((parent?.cert ?? cert).subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyCertSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(parent?.key ?? key.privateKey, forge.md.sha256.create());
  const ca = { certPem: forge.pki.certificateToPem(cert), keyPem: key.pem, cert, key: key.privateKey };
  clientCas.set(name, ca);
  return ca;
}

/**
 * A user's client certificate as kubeadm makes them: CN the user name, O each group, extKeyUsage clientAuth. `expired`
 * makes one whose validity ended an hour ago; `uri` adds a URI SAN (a SPIFFE ID, to look like a workload's);
 * `serverAuthOnly` gives it the serverAuth usage instead.
 */
export function clientCert(user: string, groups: string[] = [], o: { ca?: ClientCa; expired?: boolean; uri?: string; serverAuthOnly?: boolean } = {}): { certPem: string; keyPem: string } {
  const ca = o.ca ?? clientCa();
  const key = rsaKeys();
  const cert = newCert(key.publicKey, user);
  cert.setSubject([...groups.map((g) => ({ name: 'organizationName', value: g })), { name: 'commonName', value: user }]);
  if (o.expired) {
    cert.validity.notBefore = new Date(Date.now() - 48 * 3600_000);
    cert.validity.notAfter = new Date(Date.now() - 3600_000);
  }
  cert.setIssuer(ca.cert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    o.serverAuthOnly ? { name: 'extKeyUsage', serverAuth: true } : { name: 'extKeyUsage', clientAuth: true },
    ...(o.uri ? [{ name: 'subjectAltName', altNames: [{ type: 6, value: o.uri }] }] : []),
  ]);
  cert.sign(ca.key, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: key.pem };
}
