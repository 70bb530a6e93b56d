// The CA and the SPIFFE peer checks, in process: real certificates, a real TLS 1.3 handshake on
// 127.0.0.1, and certificates forged with node-forge for the shapes the CA itself never issues.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes, X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import forge from 'node-forge';
import { createCsr, createIssuer, createTrustAnchor, generateKey, Issuer, type CertAndKey, type KeyPair } from '../src/identity/ca.js';
import { formatIdentity, parseIdentity, PeerIdentityError, uriSans, verifyPeer, type Identity } from '../src/identity/spiffe.js';

const pki = forge.pki;
const TD = 'cluster.local';
const HOUR = 3600_000;
const EKU_SERVER = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT = '1.3.6.1.5.5.7.3.2';

const san = (...uris: string[]) => ({ name: 'subjectAltName', altNames: uris.map((value) => ({ type: 6, value })) });
const LEAF_EXTS = [
  { name: 'basicConstraints', cA: false, critical: true },
  { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
  { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
];

function pemToDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

function derToPem(der: Buffer, label: string): string {
  return `-----BEGIN ${label}-----\n${der.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END ${label}-----\n`;
}

describe('the mesh CA and SPIFFE peer checks', () => {
  let anchor: CertAndKey;
  let issuerPair: CertAndKey;
  let issuer: Issuer;
  let key: KeyPair;

  /** Signs a certificate with the test issuer and whatever extensions the case needs. */
  const forgeCert = (extensions: object[]): X509Certificate => {
    const cert = pki.createCertificate();
    cert.publicKey = pki.publicKeyFromPem(key.publicKeyPem);
    cert.serialNumber = '01' + randomBytes(8).toString('hex');
    cert.validity.notBefore = new Date(Date.now() - 60_000);
    cert.validity.notAfter = new Date(Date.now() + HOUR);
    cert.setSubject([{ name: 'commonName', value: 'forged' }]);
    cert.setIssuer(pki.certificateFromPem(issuerPair.certPem).subject.attributes);
    cert.setExtensions(extensions);
    cert.sign(pki.privateKeyFromPem(issuerPair.keyPem), forge.md.sha256.create());
    return new X509Certificate(pki.certificateToPem(cert));
  };

  before(async () => {
    anchor = await createTrustAnchor(TD);
    issuerPair = await createIssuer(TD, anchor);
    issuer = new Issuer(issuerPair);
    key = await generateKey();
  });

  it('completes a TLS 1.3 handshake with client certificates over anchor → issuer → leaf', { timeout: 20_000 }, async (t) => {
    const serverId = `spiffe://${TD}/ns/default/sa/server`;
    const clientId = `spiffe://${TD}/ns/default/sa/client`;
    const [sk, ck] = await Promise.all([generateKey(), generateKey()]);
    const serverCert = issuer.issueLeaf({ uri: serverId, publicKeyPem: sk.publicKeyPem, lifetimeMs: HOUR });
    const clientCert = issuer.issueLeaf({ uri: clientId, publicKeyPem: ck.publicKeyPem, lifetimeMs: HOUR });
    const server = tls.createServer({
      cert: serverCert + issuerPair.certPem, key: sk.keyPem, ca: anchor.certPem,
      requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3',
    });
    const accepted = new Promise<tls.TLSSocket>((resolve) => server.once('secureConnection', resolve));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => server.close());
    const client = tls.connect({
      host: '127.0.0.1', port: (server.address() as AddressInfo).port,
      cert: clientCert + issuerPair.certPem, key: ck.keyPem, ca: anchor.certPem,
      servername: 'server.default.mesh.local', minVersion: 'TLSv1.3',
      // Mesh certificates carry no DNS names; the SPIFFE check below replaces hostname checks.
      checkServerIdentity: () => undefined,
    });
    t.after(() => client.destroy());
    await once(client, 'secureConnect');
    const serverSide = await accepted;
    t.after(() => serverSide.destroy());
    assert.equal(client.authorized, true, String(client.authorizationError));
    assert.equal(serverSide.authorized, true, String(serverSide.authorizationError));
    assert.equal(client.getProtocol(), 'TLSv1.3');
    assert.equal(formatIdentity(verifyPeer(client.getPeerX509Certificate(), TD)), serverId);
    assert.equal(formatIdentity(verifyPeer(serverSide.getPeerX509Certificate(), TD)), clientId);
  });

  it('issues a leaf with exactly its SPIFFE URI SAN, not a CA, for server and client auth', () => {
    const uri = `spiffe://${TD}/ns/default/sa/web`;
    const leaf = new X509Certificate(issuer.issueLeaf({ uri, publicKeyPem: key.publicKeyPem, lifetimeMs: HOUR }));
    assert.deepEqual(uriSans(leaf.raw), [uri]);
    assert.equal(leaf.subjectAltName, `URI:${uri}`);
    assert.equal(leaf.ca, false);
    assert.deepEqual([...(leaf.keyUsage ?? [])].sort(), [EKU_SERVER, EKU_CLIENT]);
    assert.ok(leaf.checkIssued(new X509Certificate(issuerPair.certPem)));
    assert.ok(leaf.verify(new X509Certificate(issuerPair.certPem).publicKey));
  });

  it('issues a leaf that is valid now and expires when its requested lifetime ends', () => {
    const lifetimeMs = 2 * HOUR;
    const issuedAt = Date.now();
    const leaf = new X509Certificate(issuer.issueLeaf({ uri: `spiffe://${TD}/ns/default/sa/web`, publicKeyPem: key.publicKeyPem, lifetimeMs }));
    const notBefore = Date.parse(leaf.validFrom);
    const notAfter = Date.parse(leaf.validTo);
    assert.ok(notBefore <= issuedAt, 'valid from before it was issued (back-dated for clock skew)');
    // X.509 times have one-second resolution.
    assert.ok(Math.abs(notAfter - (issuedAt + lifetimeMs)) <= 5_000, `expires ${new Date(notAfter).toISOString()}`);
  });

  it('signs a CSR for the identity asked for, ignoring the names in the CSR', () => {
    const csr = pki.createCertificationRequest();
    csr.publicKey = pki.publicKeyFromPem(key.publicKeyPem);
    csr.setSubject([{ name: 'commonName', value: 'admin' }]);
    csr.setAttributes([{ name: 'extensionRequest', extensions: [san(`spiffe://${TD}/ns/kube-system/sa/admin`)] }]);
    csr.sign(pki.privateKeyFromPem(key.keyPem), forge.md.sha256.create());
    const uri = `spiffe://${TD}/ns/default/sa/web`;
    const leaf = new X509Certificate(issuer.signCsr(pki.certificationRequestToPem(csr), uri, HOUR));
    assert.deepEqual(uriSans(leaf.raw), [uri]);
    assert.equal(leaf.subject, `CN=${TD}/ns/default/sa/web`);
    assert.equal(leaf.publicKey.export({ type: 'spki', format: 'pem' }), key.publicKeyPem);
  });

  it('refuses a CSR whose content was changed after it was signed', () => {
    const der = pemToDer(createCsr(key, 'aaaaaaaaaaaa'));
    const at = der.indexOf('aaaaaaaaaaaa');
    assert.ok(at > 0);
    der[at] = 0x62; // 'a' → 'b': still a well-formed CSR, but not the one the key signed
    assert.throws(() => issuer.signCsr(derToPem(der, 'CERTIFICATE REQUEST'), `spiffe://${TD}/ns/default/sa/web`, HOUR),
      /signature does not verify/);
  });

  it('refuses a CSR whose signature bytes were corrupted', () => {
    const der = pemToDer(createCsr(key, 'web'));
    der[der.length - 1]! ^= 0x01;
    assert.throws(() => issuer.signCsr(derToPem(der, 'CERTIFICATE REQUEST'), `spiffe://${TD}/ns/default/sa/web`, HOUR));
  });

  it('accepts a forged leaf of the right shape (the control for the rejections below)', () => {
    const id = verifyPeer(forgeCert([...LEAF_EXTS, san(`spiffe://${TD}/ns/default/sa/web`)]), TD);
    assert.deepEqual(id, { trustDomain: TD, namespace: 'default', serviceAccount: 'web' });
  });

  const rejections: Array<{ name: string; exts: () => object[]; error: RegExp }> = [
    { name: 'a leaf that is a CA', error: /is a CA/,
      exts: () => [{ name: 'basicConstraints', cA: true, critical: true }, san(`spiffe://${TD}/ns/default/sa/web`)] },
    { name: 'a certificate with two SPIFFE URI SANs', error: /exactly one SPIFFE URI SAN, has 2/,
      exts: () => [...LEAF_EXTS, san(`spiffe://${TD}/ns/default/sa/web`, `spiffe://${TD}/ns/default/sa/admin`)] },
    { name: 'a SPIFFE URI SAN next to another URI SAN', error: /exactly one SPIFFE URI SAN, has 2/,
      exts: () => [...LEAF_EXTS, san(`spiffe://${TD}/ns/default/sa/web`, 'https://example.com/')] },
    { name: 'a certificate with no SAN', error: /exactly one SPIFFE URI SAN, has 0/, exts: () => [...LEAF_EXTS] },
    { name: 'an identity in another trust domain', error: /trust domain example\.org is not cluster\.local/,
      exts: () => [...LEAF_EXTS, san('spiffe://example.org/ns/default/sa/web')] },
    { name: 'a URI SAN that is not spiffe://', error: /exactly one SPIFFE URI SAN/,
      exts: () => [...LEAF_EXTS, san('https://cluster.local/ns/default/sa/web')] },
    { name: 'a SPIFFE ID that is not ns/<ns>/sa/<sa>', error: /not a mesh SPIFFE ID/,
      exts: () => [...LEAF_EXTS, san(`spiffe://${TD}/workload/web`)] },
  ];
  for (const c of rejections) {
    it(`verifyPeer rejects ${c.name}`, () => {
      const cert = forgeCert(c.exts());
      assert.throws(() => verifyPeer(cert, TD), (err: Error) => err instanceof PeerIdentityError && c.error.test(err.message));
    });
  }

  it('verifyPeer rejects a connection that presented no certificate', () => {
    assert.throws(() => verifyPeer(undefined, TD), PeerIdentityError);
  });

  it('verifyPeer rejects a leaf it already accepted when asked for another trust domain', () => {
    const cert = forgeCert([...LEAF_EXTS, san(`spiffe://${TD}/ns/default/sa/cached`)]);
    verifyPeer(cert, TD);
    assert.throws(() => verifyPeer(cert, 'example.org'), /trust domain/);
  });

  it('uriSans reads a URI containing ", URI:" as one SAN (why the DER is parsed, not Node\'s text)', () => {
    const sneaky = `spiffe://${TD}/ns/default/sa/web, URI:spiffe://${TD}/ns/kube-system/sa/admin`;
    const cert = forgeCert([...LEAF_EXTS, san(sneaky)]);
    assert.deepEqual(uriSans(cert.raw), [sneaky]);
    assert.throws(() => verifyPeer(cert, TD), /not a mesh SPIFFE ID/);
  });

  it('uriSans returns only URI names, in order, and nothing for a certificate without SANs', () => {
    const mixed = forgeCert([...LEAF_EXTS, {
      name: 'subjectAltName',
      altNames: [{ type: 2, value: 'web.example' }, { type: 6, value: 'spiffe://a/ns/b/sa/c' }, { type: 7, ip: '127.0.0.1' }, { type: 6, value: 'urn:x' }],
    }]);
    assert.deepEqual(uriSans(mixed.raw), ['spiffe://a/ns/b/sa/c', 'urn:x']);
    assert.deepEqual(uriSans(new X509Certificate(anchor.certPem).raw), []);
  });

  const valid: Array<[string, Identity]> = [
    ['spiffe://cluster.local/ns/default/sa/web', { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'web' }],
    ['spiffe://example.org/ns/a/sa/b', { trustDomain: 'example.org', namespace: 'a', serviceAccount: 'b' }],
    ['spiffe://my_td-1.local/ns/team-a/sa/svc.v2-x', { trustDomain: 'my_td-1.local', namespace: 'team-a', serviceAccount: 'svc.v2-x' }],
  ];
  for (const [uri, id] of valid) {
    it(`parseIdentity and formatIdentity round-trip ${uri}`, () => {
      assert.deepEqual(parseIdentity(uri), id);
      assert.equal(formatIdentity(id), uri);
      assert.deepEqual(parseIdentity(formatIdentity(id)), id);
    });
  }

  const invalid = [
    '',
    'https://cluster.local/ns/default/sa/web',
    'SPIFFE://cluster.local/ns/default/sa/web',
    'spiffe:///ns/default/sa/web',
    'spiffe://cluster.local/ns/default',
    'spiffe://cluster.local/ns/default/sa/',
    'spiffe://cluster.local/ns/Default/sa/web',
    'spiffe://cluster.local/ns/-default/sa/web',
    'spiffe://cluster.local/ns/default/sa/web-',
    'spiffe://cluster.local/ns/default/sa/web/extra',
    'spiffe://cluster.local/ns/default/sa/web?x=1',
    'spiffe://cluster.local/ns/default/sa/web\n',
    'spiffe://user@cluster.local/ns/default/sa/web',
    'spiffe://cluster.local:8443/ns/default/sa/web',
    'spiffe://cluster.local/sa/web/ns/default',
  ];
  for (const uri of invalid) {
    it(`parseIdentity refuses ${JSON.stringify(uri)}`, () => {
      assert.equal(parseIdentity(uri), undefined);
    });
  }
});
