// The control plane's own serving certificate is renewed at ~70% of its life, on both platforms: with a lifetime of a
// few seconds (mesh install --cert-lifetime, MESH_CERT_LIFETIME on Kubernetes) the CLI and proxies still reach it after
// its first certificate has expired, the certificate it presents moves forward, and a connection opened on the first
// certificate keeps serving across the swap.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import https from 'node:https';
import tls from 'node:tls';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestMesh, request, waitFor, type WorkloadInfo } from './support/mesh.js';
import { callJson } from './support/http.js';
import { startFakeApiServer, type FakeApiServer } from './support/kube/fake-api-server.js';
import { kubeClientFor, seedControlPlane } from './support/kube-mesh.js';
import { runKubeControl, type RunningKubeControl } from '../src/platform/kubernetes/control.js';
import { createCsr, createIssuer, createTrustAnchor, generateKey, type CertAndKey } from '../src/identity/ca.js';
import { uriSans } from '../src/identity/spiffe.js';

const LIFETIME_S = 4;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The certificate the control plane presents to a new, fully verifying TLS connection (expiry included). */
function presented(port: number, ca: string): Promise<{ notAfter: number; fingerprint: string; uris: string[] }> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', minVersion: 'TLSv1.3', checkServerIdentity: () => undefined }, () => {
      const cert = sock.getPeerX509Certificate()!;
      sock.destroy();
      resolve({ notAfter: new Date(cert.validTo).getTime(), fingerprint: cert.fingerprint256, uris: uriSans(cert.raw) });
    });
    sock.setTimeout(10_000, () => sock.destroy(new Error('TLS handshake timed out')));
    sock.on('error', reject);
  });
}

/**
 * GET /v1/version every 300 ms over one kept-alive connection (well inside the server's keep-alive timeout), until
 * stopped: which local ports carried the requests, and what failed.
 */
function steadyClient(port: number, ca: string) {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const ports = new Set<number>();
  const failures: string[] = [];
  let ok = 0;
  let stop = false;
  const one = () => new Promise<void>((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/v1/version', agent, ca, servername: 'localhost', checkServerIdentity: () => undefined }, (res) => {
      ports.add(res.socket.localPort!);
      res.resume();
      res.on('end', () => {
        if (res.statusCode === 200) ok++;
        else failures.push(`HTTP ${res.statusCode}`);
        resolve();
      });
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.on('error', (err) => {
      failures.push(err.message);
      resolve();
    });
  });
  const loop = (async () => {
    while (!stop) {
      await one();
      await sleep(300);
    }
  })();
  return async () => {
    stop = true;
    await loop;
    agent.destroy();
    return { ok, failures, ports };
  };
}

describe("the local control plane's serving certificate", () => {
  const m = new TestMesh();
  let web: WorkloadInfo;
  const file = (...p: string[]) => readFileSync(join(m.dir, ...p), 'utf8');
  const port = () => (JSON.parse(file('mesh.json')) as { controlPort: number }).controlPort;
  const anchor = () => file('identity', 'trust-anchor.crt');

  before(async () => {
    await m.install(['--cert-lifetime', `${LIFETIME_S}s`]);
  });
  after(() => m.cleanup());

  it('is renewed ahead of expiry: mesh version and a proxy still reach the control plane after the first one expired', { timeout: 90_000 }, async (t) => {
    const first = await presented(port(), anchor());
    assert.deepEqual(first.uris, ['spiffe://cluster.local/ns/mesh-system/sa/mesh-control']);
    // It follows the install's certificate lifetime (4 s here, 24 h by default), not a fixed day.
    assert.ok(first.notAfter - Date.now() <= LIFETIME_S * 1000 + 1000, `first certificate valid until ${new Date(first.notAfter).toISOString()}`);
    const steady = steadyClient(port(), anchor());
    t.after(() => steady()); // a failed assertion must not leave the loop running (the file would never end)
    web = await m.run('web');
    await waitFor('the first serving certificate to expire', () => Date.now() > first.notAfter + 1500, 30_000, 100);

    // A new CLI process makes a new, verifying handshake.
    const v = await m.cli(['version', '-o', 'json']);
    assert.equal(v.code, 0, v.stderr);
    const versions = JSON.parse(v.stdout) as { client: string; server: string | null };
    assert.equal(versions.server, versions.client, 'the control plane answered');
    const now = await presented(port(), anchor());
    assert.notEqual(now.fingerprint, first.fingerprint);
    assert.ok(now.notAfter > first.notAfter, `presented certificate still valid until ${new Date(now.notAfter).toISOString()}`);
    assert.ok(now.notAfter > Date.now());

    // The proxy renews its own certificate (also 4 s) from the control plane: one issued after the first serving
    // certificate expired ends later than that one plus a lifetime.
    const expiry = async () => Number(/^identity_cert_expiration_timestamp_seconds(?:\{[^}]*\})? (\S+)$/m.exec((await request(web.admin, { path: '/metrics' })).body)![1]) * 1000;
    await waitFor('the proxy to renew after the first serving certificate expired', async () => (await expiry()) >= first.notAfter + LIFETIME_S * 1000, 15_000, 200);
    assert.equal((await request(web.admin, { path: '/ready' })).status, 200);

    // The connection opened on the first certificate served throughout, and kept serving after the swap.
    const s = await steady();
    assert.deepEqual(s.failures, []);
    assert.equal(s.ports.size, 1, `requests went over ${s.ports.size} connections`);
    assert.ok(s.ok > 10, `only ${s.ok} requests`);
    assert.match(file('logs', 'control.log'), /serving certificate renewed, valid until/);
  });
});

describe("the Kubernetes control plane's serving certificate", () => {
  let server: FakeApiServer;
  let dir: string;
  let anchor: CertAndKey;
  let control: RunningKubeControl;
  const logs: string[] = [];

  before(async () => {
    anchor = await createTrustAnchor('cluster.local');
    const issuer = await createIssuer('cluster.local', anchor);
    server = await startFakeApiServer({ tokenReviews: { 'projected-reviews': { username: 'system:serviceaccount:default:reviews', audiences: ['mesh.io'] } } });
    dir = mkdtempSync(join(tmpdir(), 'mesh-kserving-'));
    const identity = { trustAnchorsPem: anchor.certPem, issuerCertPem: issuer.certPem, issuerKeyPem: issuer.keyPem };
    seedControlPlane(server, identity, { certLifetime: `${LIFETIME_S}s` });
    const kube = await kubeClientFor(server);
    // As the mesh-control Deployment sets it from mesh install --cert-lifetime.
    control = await runKubeControl(kube, { port: 0, webhookPort: 0, address: '127.0.0.1', env: { MESH_TRUST_DOMAIN: 'cluster.local', MESH_CERT_LIFETIME: `${LIFETIME_S}s` }, log: (l) => logs.push(l) });
  });
  after(async () => {
    await control?.close();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A proxy's bootstrap: a certificate for its projected ServiceAccount token, over a new verifying connection. */
  const certify = async () => {
    const kp = await generateKey();
    return callJson(`https://127.0.0.1:${control.port}/v1/certificates`, {
      method: 'POST', bearer: 'projected-reviews', json: { namespace: 'default', serviceAccount: 'reviews', csr: createCsr(kp, 'reviews') },
      timeoutMs: 15_000, tls: { ca: anchor.certPem, servername: 'localhost' },
    });
  };

  it('is renewed ahead of expiry, not only when the identity Secret changes: proxies still get certificates after the first one expired', { timeout: 60_000 }, async (t) => {
    const first = await presented(control.port, anchor.certPem);
    assert.ok(first.notAfter - Date.now() <= LIFETIME_S * 1000 + 1000, `first certificate valid until ${new Date(first.notAfter).toISOString()}`);
    assert.equal((await certify()).status, 200);
    const steady = steadyClient(control.port, anchor.certPem);
    t.after(() => steady());
    await waitFor('the first serving certificate to expire', () => Date.now() > first.notAfter + 1500, 30_000, 100);

    const r = await certify();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.identity, 'spiffe://cluster.local/ns/default/sa/reviews');
    const now = await presented(control.port, anchor.certPem);
    assert.notEqual(now.fingerprint, first.fingerprint);
    assert.ok(now.notAfter > first.notAfter && now.notAfter > Date.now(), `presented certificate valid until ${new Date(now.notAfter).toISOString()}`);

    const s = await steady();
    assert.deepEqual(s.failures, []);
    assert.equal(s.ports.size, 1, `requests went over ${s.ports.size} connections`);
    assert.ok(s.ok > 10, `only ${s.ok} requests`);
    assert.ok(logs.some((l) => /serving certificate renewed, valid until/.test(l)), logs.join('\n'));
  });
});
