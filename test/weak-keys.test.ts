// Keys below RSA-2048 / P-256 are refused where the mesh signs them (CSRs) and where it meets them
// (every peer check after a handshake), on the real control plane and a real sidecar (issue 10, class 7).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { TestMesh, type WorkloadInfo } from './support/mesh.js';
import { createCsr, createIssuer, createTrustAnchor, generateKey, Issuer } from '../src/identity/ca.js';
import { buildCsr } from '../src/identity/der.js';
import { joinTokenFor } from '../src/platform/local/state.js';
import { PeerIdentityError, verifyPeer, weakKeyReason } from '../src/identity/spiffe.js';

const TD = 'cluster.local';
const HOUR = 3_600_000;

describe('weak keys, unit by unit', () => {
  let issuer: Issuer;
  before(async () => {
    issuer = new Issuer(await createIssuer(TD, await createTrustAnchor(TD)));
  });

  for (const bits of [512, 1024, 2047]) {
    it(`refuses to sign a CSR for an RSA-${bits} key`, async () => {
      const csr = createCsr(await generateKey(bits), 'web');
      assert.throws(() => issuer.signCsr(csr, `spiffe://${TD}/ns/default/sa/web`, HOUR), new RegExp(`RSA-${bits} key \\(the mesh needs RSA-2048`));
    });
  }

  it('signs a CSR for an RSA-2048 key (the control)', async () => {
    const pem = issuer.signCsr(createCsr(await generateKey(2048), 'web'), `spiffe://${TD}/ns/default/sa/web`, HOUR);
    assert.equal(new X509Certificate(pem).publicKey.asymmetricKeyDetails?.modulusLength, 2048);
  });

  it('verifyPeer refuses a well-formed leaf whose key is RSA-1024', async () => {
    const weak = await generateKey(1024);
    const leaf = new X509Certificate(issuer.issueLeaf({ uri: `spiffe://${TD}/ns/default/sa/web`, publicKeyPem: weak.publicKeyPem, lifetimeMs: HOUR }));
    assert.throws(() => verifyPeer(leaf, TD), (e: Error) => e instanceof PeerIdentityError && /RSA-1024 key/.test(e.message));
  });

  it('takes EC P-256 and up, and refuses smaller curves', () => {
    const ec = (namedCurve: string) => generateKeyPairSync('ec', { namedCurve }).publicKey;
    assert.equal(weakKeyReason(ec('prime256v1')), undefined);
    assert.equal(weakKeyReason(ec('secp384r1')), undefined);
    assert.match(weakKeyReason(ec('secp224r1'))!, /curve secp224r1/);
    assert.equal(weakKeyReason(generateKeyPairSync('ed25519').publicKey), undefined);
  });
});

describe('weak keys against a running mesh', () => {
  const m = new TestMesh();
  let web: WorkloadInfo;
  const file = (...p: string[]) => readFileSync(join(m.dir, ...p), 'utf8');
  before(async () => {
    await m.install();
    web = await m.run('web');
  });
  after(() => m.cleanup());

  it('the control plane answers 400 to an RSA-1024 CSR with a valid join credential', async () => {
    const kp = await generateKey(1024);
    const r = await m.api<{ error?: string }>('POST', '/v1/certificates', {
      bearer: joinTokenFor(file('secrets', 'join.key').trim(), 'default', 'client'),
      json: { namespace: 'default', serviceAccount: 'client', csr: buildCsr(kp.keyPem, 'default/client') },
    });
    assert.equal(r.status, 400);
    assert.match(r.body.error ?? '', /RSA-1024 key/);
  });

  /** A raw HTTP/1.1 request over TLS to the sidecar's inbound port with the given client leaf. */
  const call = (bits: number) => async (): Promise<string> => {
    const kp = await generateKey(bits);
    const issuer = new Issuer({ certPem: file('identity', 'issuer.crt'), keyPem: file('identity', 'issuer.key') });
    const cert = issuer.issueLeaf({ uri: `spiffe://${TD}/ns/default/sa/client`, publicKeyPem: kp.publicKeyPem, lifetimeMs: HOUR });
    const [host, port] = web.inbound.split(':') as [string, string];
    return new Promise((resolve, reject) => {
      let got = '';
      const s = tls.connect({ host, port: Number(port), cert: cert + file('identity', 'issuer.crt'), key: kp.keyPem, ca: file('identity', 'trust-anchor.crt'),
        ALPNProtocols: ['http/1.1'], checkServerIdentity: () => undefined }, () => s.write('GET /x HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n'));
      s.setTimeout(5000, () => s.destroy(new Error('no answer within 5 s')));
      s.on('data', (c: Buffer) => (got += c.toString('latin1')));
      s.on('close', () => resolve(got));
      s.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? resolve(got) : reject(err)));
    });
  };

  it('a sidecar answers a peer with an RSA-2048 leaf (the control)', async () => {
    assert.match(await call(2048)(), /^HTTP\/1\.1 200/);
  });

  it('a sidecar refuses a peer whose leaf has an RSA-1024 key, though the issuer signed it', async () => {
    assert.equal(await call(1024)(), '');
    assert.match(readFileSync(join(m.dir, 'logs', `${web.instance}.log`), 'utf8'), /inbound: refused a connection: peer certificate has an RSA-1024 key/);
  });
});
