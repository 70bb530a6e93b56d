// `mesh control --platform kubernetes --kubeconfig <fake>` as a child process (identity read from the rendered Secrets,
// nothing mounted), seen as a proxy sees it: a certificate
// for a projected ServiceAccount token (TokenReview), then the snapshot watch with that certificate, carrying the
// EndpointSlice endpoints and the Route resources and following their changes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import https from 'node:https';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeApiServer, type FakeApiServer } from './support/kube/fake-api-server.js';
import { MESH_BIN } from './support/mesh.js';
import { fixture } from './support/golden.js';
import { seedMeshPod } from './support/kube-mesh.js';
import { renderCrds } from '../src/platform/kubernetes/crds.js';
import { renderControlPlane } from '../src/platform/kubernetes/manifests.js';
import { TRUST_ROOTS_CONFIGMAP } from '../src/platform/kubernetes/names.js';
import { createCsr, generateKey } from '../src/identity/ca.js';
import type { Snapshot } from '../src/model/snapshot.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const slice = (pods: { pod: string; ip: string }[]): Obj => ({
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
  metadata: { name: 'reviews-x1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'reviews' } },
  endpoints: pods.map((p) => ({ addresses: [p.ip], conditions: { ready: true }, targetRef: { kind: 'Pod', name: p.pod, namespace: 'default' } })),
});
const route = (v1: number, v2: number): Obj => ({
  apiVersion: 'mesh.io/v1alpha1', kind: 'Route', metadata: { name: 'reviews', namespace: 'default' },
  spec: { rules: [{ backends: [{ version: 'v1', weight: v1 }, { version: 'v2', weight: v2 }] }] },
});

describe('mesh control --platform kubernetes as a child process', () => {
  let server: FakeApiServer;
  let dir: string;
  let child: ChildProcess;
  let port: number;
  let logs = '';
  let tls: { cert: string; key: string; ca: string } | undefined;

  before(async () => {
    server = await startFakeApiServer({ tokenReviews: {
      'projected-reviews': { username: 'system:serviceaccount:default:reviews', audiences: ['mesh.io'] },
      'projected-ratings': { username: 'system:serviceaccount:default:ratings', audiences: ['mesh.io'] },
    } });
    for (const crd of renderCrds()) server.store.create(crd as Obj);
    seedMeshPod(server, 'reviews-v1-a', { app: 'reviews', version: 'v1' }, { ip: '10.1.0.1' });
    server.store.create(slice([{ pod: 'reviews-v1-a', ip: '10.1.0.1' }]));
    server.store.create(route(80, 20));
    dir = mkdtempSync(join(tmpdir(), 'mesh-kctl-'));
    // Nothing mounted: the identity comes from the Secrets and ConfigMap mesh install renders, read through the API.
    const identity = { trustAnchorsPem: fixture('kube', 'anchor.crt'), issuerCertPem: fixture('kube', 'issuer.crt'), issuerKeyPem: fixture('kube', 'issuer.key') };
    const webhook = { caPem: fixture('kube', 'webhook-ca.crt'), certPem: fixture('kube', 'webhook.crt'), keyPem: fixture('kube', 'webhook.key') };
    for (const o of renderControlPlane({ version: 'test', image: 'mesh:test', trustDomain: 'cluster.local', certLifetime: '24h', identity, webhook })) {
      if (o.kind === 'Namespace' || o.kind === 'Secret' || o.metadata.name === TRUST_ROOTS_CONFIGMAP) server.store.create(o as Obj);
    }
    const kubeconfig = server.writeKubeconfig(dir);
    child = spawn(process.execPath, [MESH_BIN, '--platform', 'kubernetes', '--kubeconfig', kubeconfig, 'control', '--port', '0', '--webhook-port', '0'], {
      env: { ...process.env, HOME: dir, KUBECONFIG: '', MESH_IDENTITY_DIR: '', MESH_WEBHOOK_DIR: '', MESH_LISTEN_ADDRESS: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (c) => (logs += c));
    child.stderr!.on('data', (c) => (logs += c));
    port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`control plane did not start in 20s:\n${logs}`)), 20_000);
      child.stdout!.on('data', () => {
        const m = /API on :(\d+)/.exec(logs);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      child.on('exit', (code) => reject(new Error(`control plane exited (${code}):\n${logs}`)));
    });
  });
  after(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = (method: string, path: string, o: { bearer?: string; body?: unknown } = {}) => new Promise<{ status: number; body: Obj }>((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port, path, method, servername: 'localhost',
      ...(tls ? { cert: tls.cert, key: tls.key, ca: tls.ca } : { rejectUnauthorized: false }),
      headers: { 'content-type': 'application/json', ...(o.bearer ? { authorization: `Bearer ${o.bearer}` } : {}) },
    }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data ? JSON.parse(data) as Obj : {} }));
    });
    req.setTimeout(30_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(o.body ? JSON.stringify(o.body) : undefined);
  });

  const csrFor = async (serviceAccount: string) => {
    const kp = await generateKey();
    return { kp, body: { namespace: 'default', serviceAccount, csr: createCsr(kp, serviceAccount) } };
  };

  it('refuses a certificate for a ServiceAccount the token does not belong to', async () => {
    const { body } = await csrFor('reviews');
    const r = await call('POST', '/v1/certificates', { bearer: 'projected-ratings', body });
    assert.equal(r.status, 403, JSON.stringify(r.body));
  });

  it("issues the token's ServiceAccount identity, and that certificate opens the snapshot watch", async () => {
    const { kp, body } = await csrFor('reviews');
    const r = await call('POST', '/v1/certificates', { bearer: 'projected-reviews', body });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.identity, 'spiffe://cluster.local/ns/default/sa/reviews');
    tls = { cert: r.body.certificate + r.body.chain.join(''), key: kp.keyPem, ca: r.body.trustAnchors };
    const w = await call('GET', '/v1/watch?since=');
    assert.equal(w.status, 200);
    const snap = w.body as Snapshot;
    assert.deepEqual(snap.services.map((s) => s.endpoints.map((e) => `${s.name} ${e.address}:${e.port} ${e.version}`)).flat(), ['reviews 10.1.0.1:4143 v1']);
    assert.equal((snap.config?.routes as Obj).routes[0].spec.rules[0].backends[0].weight, 80);
  });

  it('pushes Route and EndpointSlice changes to the watch', async () => {
    const first = (await call('GET', '/v1/watch?since=')).body as Snapshot;
    server.store.put(route(50, 50));
    let snap = first;
    for (let i = 0; i < 10 && (snap.config?.routes as Obj).routes[0].spec.rules[0].backends[0].weight !== 50; i++) {
      snap = (await call('GET', `/v1/watch?since=${encodeURIComponent(snap.version)}`)).body as Snapshot;
    }
    assert.equal((snap.config?.routes as Obj).routes[0].spec.rules[0].backends[0].weight, 50);
    seedMeshPod(server, 'reviews-v2-a', { app: 'reviews', version: 'v2' }, { ip: '10.1.0.2' });
    server.store.put(slice([{ pod: 'reviews-v1-a', ip: '10.1.0.1' }, { pod: 'reviews-v2-a', ip: '10.1.0.2' }]));
    for (let i = 0; i < 10 && snap.services[0]!.endpoints.length < 2; i++) {
      snap = (await call('GET', `/v1/watch?since=${encodeURIComponent(snap.version)}`)).body as Snapshot;
    }
    assert.deepEqual(snap.services[0]!.endpoints.map((e) => e.version), ['v1', 'v2']);
  });

  it('bootstraps an injected sidecar (mesh proxy --platform kubernetes) with its projected token', { timeout: 60_000 }, async () => {
    // The app behind the sidecar, for plaintext callers (a kubelet probe) through the inbound port.
    const app = http.createServer((_req, res) => res.end('app ok'));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const appPort = (app.address() as { port: number }).port;
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'projected-reviews\n');
    const proxyEnv = {
      ...process.env, MESH_NAMESPACE: 'default', MESH_POD_NAME: 'reviews-v1-a', MESH_SERVICE_ACCOUNT: 'reviews', MESH_VERSION: 'v1',
      MESH_TRUST_DOMAIN: 'cluster.local', MESH_CONTROL_ADDRESS: `127.0.0.1:${port}`, MESH_IDENTITY_TOKEN_FILE: tokenFile,
      MESH_TRUST_ANCHORS: fixture('kube', 'anchor.crt'), MESH_APP_PORT: String(appPort),
    };
    const proxy = spawn(process.execPath, [MESH_BIN, '--platform', 'kubernetes', 'proxy', '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0'], { env: proxyEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proxy.stdout!.on('data', (c) => (out += c));
    proxy.stderr!.on('data', (c) => (out += c));
    try {
      const addrs = await new Promise<{ admin: string }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the proxy did not start in 30s:\n${out}`)), 30_000);
        proxy.stdout!.on('data', () => {
          const line = out.split('\n').find((l) => l.startsWith('{'));
          if (line) {
            clearTimeout(timer);
            resolve(JSON.parse(line) as { admin: string });
          }
        });
        proxy.on('exit', (code) => reject(new Error(`the proxy exited (${code}):\n${out}`)));
      });
      const adminPort = Number(addrs.admin.split(':').pop());
      const get = (path: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: adminPort, path }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        }).on('error', reject);
      });
      let ready = 0;
      for (let i = 0; i < 100 && ready !== 200; i++) {
        ready = (await get('/ready')).status;
        if (ready !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(ready, 200, out);
      const metrics = (await get('/metrics')).body;
      const expiry = Number(/^identity_cert_expiration_timestamp_seconds\{[^}]*\} (\S+)$/m.exec(metrics)?.[1]);
      assert.ok(expiry > Date.now() / 1000, 'the sidecar holds a certificate from the control plane');
      assert.match(out, /identity spiffe:\/\/cluster.local\/ns\/default\/sa\/reviews: certificate valid until/);
      // A plaintext request on the inbound port (what iptables sends a kubelet probe to) reaches the app.
      const inboundPort = Number((JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!) as { inbound: string }).inbound.split(':').pop());
      const probe = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: inboundPort, path: '/healthz' }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        }).on('error', reject);
      });
      assert.deepEqual(probe, { status: 200, body: 'app ok' });
    } finally {
      app.close();
      proxy.kill('SIGTERM');
      await new Promise((r) => (proxy.exitCode === null ? proxy.once('exit', r) : r(null)));
    }
  });

  it('refuses to change routes through its own API, pointing at the Route resources', async () => {
    const r = await call('PUT', '/v1/config/routes', { body: { routes: [] } });
    assert.equal(r.status, 401, 'the admin API needs the admin credential, which no one outside the pod holds');
  });
});
