// The inbound listener through the real binary: every way of arriving without a valid mesh identity
// gets no HTTP answer and never reaches the app; a valid one does, under its verified identity.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import forge from 'node-forge';
import { createIssuer, createTrustAnchor, generateKey, Issuer, type KeyPair } from '../src/identity/ca.js';
import { formatIdentity, verifyPeer } from '../src/identity/spiffe.js';
import { TestMesh, ROOT, freePort, request, waitFor, type WorkloadInfo } from './support/mesh.js';
import { call } from './support/http.js';
import { ALPN } from '../src/proxy/wire/mux-frames.js';
import { frame } from './support/mux-bed.js';

const RECORDING_APP = join(ROOT, 'test', 'fixtures', 'recording-app.mjs');
const TD = 'cluster.local';
const WEB_ID = `spiffe://${TD}/ns/default/sa/web`;
const TESTER_ID = `spiffe://${TD}/ns/default/sa/tester`;
const HOUR = 3600_000;

interface Attempt {
  bytes: Buffer;
  error?: string;
}

describe('the inbound mTLS listener', () => {
  const m = new TestMesh();
  let web: WorkloadInfo;
  let anchorPem: string;
  let issuerPem: string;
  let issuer: Issuer;
  let key: KeyPair;
  let validCert: string;

  // The client checks the server properly in every case, so a refusal is always the server's doing.
  const checkServer = (_host: string, cert: tls.PeerCertificate): Error | undefined => {
    try {
      const id = formatIdentity(verifyPeer(new X509Certificate(cert.raw), TD));
      return id === WEB_ID ? undefined : new Error(`server is ${id}`);
    } catch (err) {
      return err as Error;
    }
  };
  const clientTls = (o: tls.ConnectionOptions): tls.ConnectionOptions => ({
    ca: anchorPem, servername: 'web.default.mesh.local', checkServerIdentity: checkServer, ...o,
  });

  /** Sends one GET over a raw connection (TLS unless `tlsOptions` is null); resolves when it closes. */
  const attempt = (tlsOptions: tls.ConnectionOptions | null, path: string): Promise<Attempt> => {
    const [host, port] = web.inbound.split(':') as [string, string];
    const text = `GET ${path} HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n`;
    return new Promise((resolve, reject) => {
      const sock: net.Socket = tlsOptions
        ? tls.connect({ host, port: Number(port), ...clientTls(tlsOptions) }, () => sock.write(text))
        : net.connect({ host, port: Number(port) }, () => sock.write(text));
      const chunks: Buffer[] = [];
      let error: string | undefined;
      sock.on('data', (c: Buffer) => chunks.push(c));
      sock.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`connection for ${path} still open after 10 s`));
      }, 10_000);
      sock.on('close', () => {
        clearTimeout(timer);
        resolve({ bytes: Buffer.concat(chunks), error });
      });
    });
  };

  const appSaw = async (): Promise<string[]> =>
    JSON.parse((await request(`127.0.0.1:${web.appPort}`, { path: '/__seen' })).body) as string[];

  const sidecarLog = (): string => readFileSync(join(m.dir, 'logs', `${web.instance}.log`), 'utf8');

  /** A leaf signed by the mesh's own issuer with whatever basic constraints the case needs. */
  const forgeLeaf = (uri: string, ca: boolean): string => {
    const cert = forge.pki.createCertificate();
    cert.publicKey = forge.pki.publicKeyFromPem(key.publicKeyPem);
    cert.serialNumber = '01' + randomBytes(8).toString('hex');
    cert.validity.notBefore = new Date(Date.now() - 60_000);
    cert.validity.notAfter = new Date(Date.now() + HOUR);
    cert.setSubject([{ name: 'commonName', value: 'forged' }]);
    cert.setIssuer(forge.pki.certificateFromPem(issuerPem).subject.attributes);
    cert.setExtensions([
      { name: 'basicConstraints', cA: ca, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: ca, critical: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 6, value: uri }] },
    ]);
    const issuerKey = forge.pki.privateKeyFromPem(readFileSync(join(m.dir, 'identity', 'issuer.key'), 'utf8'));
    cert.sign(issuerKey, forge.md.sha256.create());
    return forge.pki.certificateToPem(cert);
  };

  before(async () => {
    await m.install();
    const port = await freePort();
    const r = await m.cli(['run', '-d', '-o', 'json', '--name', 'web', '--port', String(port), '--', process.execPath, RECORDING_APP]);
    if (r.code !== 0) throw new Error(`run web failed: ${r.stderr}`);
    web = JSON.parse(r.stdout) as WorkloadInfo;
    anchorPem = readFileSync(join(m.dir, 'identity', 'trust-anchor.crt'), 'utf8');
    issuerPem = readFileSync(join(m.dir, 'identity', 'issuer.crt'), 'utf8');
    issuer = new Issuer({ certPem: issuerPem, keyPem: readFileSync(join(m.dir, 'identity', 'issuer.key'), 'utf8') });
    key = await generateKey();
    validCert = issuer.issueLeaf({ uri: TESTER_ID, publicKeyPem: key.publicKeyPem, lifetimeMs: HOUR }) + issuerPem;
    await waitFor('the app to listen', async () => Array.isArray(await appSaw()), 20_000);
  });
  after(async () => {
    await m.cleanup();
  });

  const refused: Array<{ name: string; slug: string; tls: () => Promise<tls.ConnectionOptions | null>; logged?: RegExp }> = [
    { name: 'sends plain HTTP without TLS', slug: 'plain', tls: async () => null },
    { name: 'uses TLS without a client certificate', slug: 'no-cert', tls: async () => ({}) },
    {
      name: 'presents a certificate from another CA', slug: 'foreign-ca',
      tls: async () => {
        const otherAnchor = await createTrustAnchor(TD);
        const other = await createIssuer(TD, otherAnchor);
        const leaf = new Issuer(other).issueLeaf({ uri: TESTER_ID, publicKeyPem: key.publicKeyPem, lifetimeMs: HOUR });
        return { cert: leaf + other.certPem, key: key.keyPem };
      },
    },
    {
      name: 'presents an expired certificate from the mesh issuer', slug: 'expired',
      tls: async () => {
        const leaf = issuer.issueLeaf({ uri: TESTER_ID, publicKeyPem: key.publicKeyPem, lifetimeMs: HOUR, notBefore: new Date(Date.now() - 3 * HOUR) });
        assert.ok(Date.parse(new X509Certificate(leaf).validTo) < Date.now(), 'the leaf has expired');
        return { cert: leaf + issuerPem, key: key.keyPem };
      },
    },
    {
      name: 'presents a mesh-issued leaf for another trust domain', slug: 'other-domain', logged: /trust domain example\.org is not cluster\.local/,
      tls: async () => ({ cert: issuer.issueLeaf({ uri: 'spiffe://example.org/ns/default/sa/tester', publicKeyPem: key.publicKeyPem, lifetimeMs: HOUR }) + issuerPem, key: key.keyPem }),
    },
    {
      name: 'presents a mesh-issued leaf that is a CA', slug: 'ca-leaf', logged: /leaf certificate is a CA/,
      tls: async () => ({ cert: forgeLeaf(TESTER_ID, true) + issuerPem, key: key.keyPem }),
    },
    { name: 'offers only TLS 1.2', slug: 'tls12', tls: async () => ({ cert: validCert, key: key.keyPem, maxVersion: 'TLSv1.2' }) },
  ];

  for (const c of refused) {
    it(`gives no HTTP response, and the app no request, to a client that ${c.name}`, { timeout: 30_000 }, async () => {
      const path = `/refused/${c.slug}`;
      const got = await attempt(await c.tls(), path);
      // A plain-text client may get a TLS alert back, never an HTTP status line.
      assert.ok(!got.bytes.toString('latin1').includes('HTTP/'), `got ${JSON.stringify(got.bytes.toString('latin1'))}`);
      if (c.slug !== 'plain') assert.equal(got.bytes.length, 0);
      if (c.logged) await waitFor(`the sidecar to log the refusal (${c.logged})`, () => c.logged!.test(sidecarLog()), 5_000);
      assert.ok(!(await appSaw()).includes(`GET ${path}`));
    });
  }

  it('answers a client with a valid mesh-issued leaf over the same raw path (the control)', { timeout: 30_000 }, async () => {
    const got = await attempt({ cert: validCert, key: key.keyPem }, '/accepted/raw');
    assert.match(got.bytes.toString('latin1'), /^HTTP\/1\.1 200 /);
    const saw = await appSaw();
    assert.ok(saw.includes('GET /accepted/raw'));
    // This request came after every refused one, so any of those forwarded late would be here by now.
    assert.deepEqual(saw.filter((r) => r.includes('/refused/')), []);
  });

  it('speaks mesh/1 to a client that offers it, and resets a stream whose body overruns its Content-Length', { timeout: 30_000 }, async (t) => {
    const [host, port] = web.inbound.split(':') as [string, string];
    const sock = tls.connect({ host, port: Number(port), ...clientTls({ cert: validCert, key: key.keyPem, ALPNProtocols: [ALPN] }) });
    t.after(() => sock.destroy());
    await new Promise<void>((resolve, reject) => sock.once('secureConnect', resolve).once('error', reject));
    assert.equal(sock.alpnProtocol, ALPN);
    const frames: Array<{ type: number; flags: number; id: number; payload: string }> = [];
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 10 && buf.length >= 10 + buf.readUInt32BE(6)) {
        const len = buf.readUInt32BE(6);
        frames.push({ type: buf[0]!, flags: buf[1]!, id: buf.readUInt32BE(2), payload: buf.subarray(10, 10 + len).toString('latin1') });
        buf = buf.subarray(10 + len);
      }
    });
    // Stream 1 hides a second request after its declared 5 bytes; stream 3 is an honest GET.
    sock.write(Buffer.concat([
      frame(1, 0, 1, 'POST /mux/smuggle HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n\r\n'),
      frame(2, 1, 1, 'helloGET /refused/mux-hidden HTTP/1.1\r\nHost: web\r\n\r\n'),
      frame(1, 1, 3, 'GET /accepted/mux HTTP/1.1\r\nHost: web\r\n\r\n'),
    ]));
    await waitFor('a reset of stream 1 and the end of stream 3', () =>
      frames.some((f) => f.id === 1 && f.type === 3) && frames.some((f) => f.id === 3 && (f.flags & 1) === 1), 10_000, 10);
    const head3 = frames.find((f) => f.id === 3 && f.type === 1);
    assert.match(head3?.payload ?? '', /^HTTP\/1\.1 200 /);
    const saw = await appSaw();
    assert.ok(saw.includes('GET /accepted/mux'));
    assert.ok(!saw.some((r) => r.includes('mux-hidden')), 'the hidden request reached the app');
  });

  it('serves no request on a session whose client certificate has expired since the handshake', { timeout: 30_000 }, async (t) => {
    const [host, port] = web.inbound.split(':') as [string, string];
    const shortLived = issuer.issueLeaf({ uri: TESTER_ID, publicKeyPem: key.publicKeyPem, lifetimeMs: 3_000 }) + issuerPem;
    const validTo = Date.parse(new X509Certificate(shortLived).validTo);
    const sock = tls.connect({ host, port: Number(port), ...clientTls({ cert: shortLived, key: key.keyPem, ALPNProtocols: [ALPN] }) });
    t.after(() => sock.destroy());
    let got = '';
    let closed = false;
    sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
    sock.on('error', () => {});
    sock.on('close', () => (closed = true));
    await new Promise<void>((resolve, reject) => sock.once('secureConnect', resolve).once('error', reject));
    sock.write(frame(1, 1, 1, 'GET /accepted/fresh HTTP/1.1\r\nHost: web\r\n\r\n'));
    await waitFor('the first answer', () => got.includes('HTTP/1.1 200'), 10_000, 10);
    await new Promise((r) => setTimeout(r, Math.max(0, validTo - Date.now()) + 1_100));
    sock.write(frame(1, 1, 3, 'GET /refused/stale HTTP/1.1\r\nHost: web\r\n\r\n'));
    await waitFor('the proxy to close the session', () => closed, 10_000, 10);
    assert.ok(!(await appSaw()).some((r) => r.includes('/refused/stale')));
  });

  const mtlsGet = (path: string, headers: Record<string, string> = {}) =>
    call(`https://${web.inbound}${path}`, { headers, tls: clientTls({ cert: validCert, key: key.keyPem }) });

  it('tells the app the verified SPIFFE ID of a valid client in mesh-client-id', { timeout: 30_000 }, async () => {
    const r = await mtlsGet('/accepted/id');
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body) as { path: string; headers: Record<string, string> };
    assert.equal(seen.path, '/accepted/id');
    assert.equal(seen.headers['mesh-client-id'], TESTER_ID);
  });

  it('replaces a mesh-client-id header the client sent instead of passing it through', { timeout: 30_000 }, async () => {
    const r = await mtlsGet('/accepted/spoof', { 'Mesh-Client-Id': `spiffe://${TD}/ns/kube-system/sa/admin` });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body) as { headers: Record<string, string>; rawHeaders: string[] };
    assert.equal(seen.headers['mesh-client-id'], TESTER_ID);
    const ids = seen.rawHeaders.filter((_, i, a) => i % 2 === 1 && a[i - 1]!.toLowerCase() === 'mesh-client-id');
    assert.deepEqual(ids, [TESTER_ID]);
  });
});
