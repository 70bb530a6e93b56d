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
