// `mesh control --platform kubernetes --kubeconfig <fake>` as a child process (identity read from the rendered Secrets,
// nothing mounted), seen as a proxy sees it: a certificate
// for a projected ServiceAccount token (TokenReview), then the snapshot watch with that certificate, carrying the
// EndpointSlice endpoints and the Route resources and following their changes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeApiServer, type FakeApiServer } from './support/kube/fake-api-server.js';
import { startMesh, waitFor } from './support/mesh.js';
import { get } from './support/http.js';
import { fixture } from './support/golden.js';
import { asProxy, seedControlPlane, seedMeshPod, startKubeControlProcess, type KubeControlProcess } from './support/kube-mesh.js';
import { renderCrds } from '../src/platform/kubernetes/crds.js';
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
  let control: KubeControlProcess;
  let port: number;
  let api: ReturnType<typeof asProxy>;

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
    seedControlPlane(server, { trustAnchorsPem: fixture('kube', 'anchor.crt'), issuerCertPem: fixture('kube', 'issuer.crt'), issuerKeyPem: fixture('kube', 'issuer.key') });
    control = await startKubeControlProcess(server, dir);
    port = control.port;
    api = asProxy(port);
  });
  after(async () => {
    await control?.process.stop();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const csrFor = async (serviceAccount: string) => {
    const kp = await generateKey();
    return { kp, body: { namespace: 'default', serviceAccount, csr: createCsr(kp, serviceAccount) } };
  };

  it('refuses a certificate for a ServiceAccount the token does not belong to', async () => {
    const { body } = await csrFor('reviews');
    const r = await api.call('POST', '/v1/certificates', { bearer: 'projected-ratings', body });
    assert.equal(r.status, 403, JSON.stringify(r.body));
  });

  it("issues the token's ServiceAccount identity, and that certificate opens the snapshot watch", async () => {
    const { kp, body } = await csrFor('reviews');
    const r = await api.call('POST', '/v1/certificates', { bearer: 'projected-reviews', body });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.identity, 'spiffe://cluster.local/ns/default/sa/reviews');
    api.present(r.body as { certificate: string; chain: string[]; trustAnchors: string }, kp.keyPem);
    const w = await api.call('GET', '/v1/watch?since=');
    assert.equal(w.status, 200);
    const snap = w.body as Snapshot;
    assert.deepEqual(snap.services.map((s) => s.endpoints.map((e) => `${s.name} ${e.address}:${e.port} ${e.version}`)).flat(), ['reviews 10.1.0.1:4143 v1']);
    assert.equal((snap.config?.routes as Obj).routes[0].spec.rules[0].backends[0].weight, 80);
  });

  it('pushes Route and EndpointSlice changes to the watch', async () => {
    const first = (await api.call('GET', '/v1/watch?since=')).body as Snapshot;
    server.store.put(route(50, 50));
    let snap = first;
    for (let i = 0; i < 10 && (snap.config?.routes as Obj).routes[0].spec.rules[0].backends[0].weight !== 50; i++) {
      snap = (await api.call('GET', `/v1/watch?since=${encodeURIComponent(snap.version)}`)).body as Snapshot;
    }
    assert.equal((snap.config?.routes as Obj).routes[0].spec.rules[0].backends[0].weight, 50);
    seedMeshPod(server, 'reviews-v2-a', { app: 'reviews', version: 'v2' }, { ip: '10.1.0.2' });
    server.store.put(slice([{ pod: 'reviews-v1-a', ip: '10.1.0.1' }, { pod: 'reviews-v2-a', ip: '10.1.0.2' }]));
    for (let i = 0; i < 10 && snap.services[0]!.endpoints.length < 2; i++) {
      snap = (await api.call('GET', `/v1/watch?since=${encodeURIComponent(snap.version)}`)).body as Snapshot;
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
    const proxy = startMesh(['--platform', 'kubernetes', 'proxy', '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0'], proxyEnv);
    try {
      const addrs = await proxy.until('its listeners', (out) => {
        const line = out.split('\n').find((l) => l.startsWith('{'));
        return line ? JSON.parse(line) as { admin: string; inbound: string } : undefined;
      }, 30_000);
      // Its listeners as host:port on loopback, whatever address they print.
      const admin = `127.0.0.1:${addrs.admin.split(':').pop()}`;
      await waitFor('the sidecar to be ready', async () => (await get(admin, '/ready')).status === 200, 20_000, 100)
        .catch((err: Error) => { throw new Error(`${err.message}\n${proxy.output()}`); });
      const metrics = (await get(admin, '/metrics')).body;
      const expiry = Number(/^identity_cert_expiration_timestamp_seconds\{[^}]*\} (\S+)$/m.exec(metrics)?.[1]);
      assert.ok(expiry > Date.now() / 1000, 'the sidecar holds a certificate from the control plane');
      assert.match(proxy.output(), /identity spiffe:\/\/cluster.local\/ns\/default\/sa\/reviews: certificate valid until/);
      // A plaintext request on the inbound port (what iptables sends a kubelet probe to) reaches the app.
      const probe = await get(`127.0.0.1:${addrs.inbound.split(':').pop()}`, '/healthz');
      assert.deepEqual([probe.status, probe.body], [200, 'app ok']);
    } finally {
      app.close();
      await proxy.stop();
    }
  });

  it('refuses to change routes through its own API, pointing at the Route resources', async () => {
    const r = await api.call('PUT', '/v1/config/routes', { body: { routes: [] } });
    assert.equal(r.status, 401, 'the admin API needs the admin credential, which no one outside the pod holds');
  });
});
