// The control plane's Kubernetes platform against the fake API server: endpoints from EndpointSlices and Pods, their
// Services' ports, routes from Route resources, kept by watches that resume after a cut and re-list after 410 Gone;
// certificates for workloads that prove their ServiceAccount with a token (TokenReview), and only for that ServiceAccount.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type https from 'node:https';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { startFakeApiServer, type FakeApiServer } from './support/kube/fake-api-server.js';
import { waitFor } from './support/mesh.js';
import { asProxy, seedMeshPod, startWatchedRegistry } from './support/kube-mesh.js';
import { renderCrds } from '../src/platform/kubernetes/crds.js';
import { renderControlPlane } from '../src/platform/kubernetes/manifests.js';
import { generateIdentity, generateWebhookCert } from '../src/platform/kubernetes/identity.js';
import { ISSUER_SECRET, TRUST_ROOTS_CONFIGMAP } from '../src/platform/kubernetes/names.js';
import { KubeClient } from '../src/platform/kubernetes/client.js';
import { KubeControlPlatform } from '../src/platform/kubernetes/control-platform.js';
import { readKubeIdentity, tokenReviewBootstrap } from '../src/platform/kubernetes/control-identity.js';
import { Registry } from '../src/control/registry.js';
import { createControlServer } from '../src/control/server.js';
import { createCsr, generateKey, DAY } from '../src/identity/ca.js';
import { uriSans } from '../src/identity/spiffe.js';
import type { Snapshot } from '../src/model/snapshot.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const TD = 'cluster.local';

function slice(name: string, service: string, pods: { pod: string; ip: string; ready?: boolean }[]): Obj {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
    metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': service } },
    ports: [{ name: 'http', port: 9080, protocol: 'TCP' }],
    endpoints: pods.map((p) => ({ addresses: [p.ip], conditions: { ready: p.ready ?? true }, targetRef: { kind: 'Pod', name: p.pod, namespace: 'default' } })),
  };
}

const endpointsOf = (snap: Snapshot, service: string) =>
  snap.services.find((s) => s.name === service)?.endpoints.map((e) => `${e.address}:${e.port} ${e.version} ${e.identity}`).sort() ?? [];

describe('the control plane on kubernetes (fake API server)', () => {
  let server: FakeApiServer;
  let platform: KubeControlPlatform;
  let registry: Registry;
  let stop: () => Promise<void>;
  let kube: KubeClient;

  before(async () => {
    server = await startFakeApiServer({
      tokenReviews: {
        'token-reviews': { username: 'system:serviceaccount:default:reviews', audiences: ['mesh.io'] },
        'token-productpage': { username: 'system:serviceaccount:default:productpage', audiences: ['mesh.io'] },
        'token-other-audience': { username: 'system:serviceaccount:default:reviews', audiences: ['https://kubernetes.default.svc'] },
      },
    });
    for (const crd of renderCrds()) server.store.create(crd as Obj);
    seedMeshPod(server, 'reviews-v1-a', { app: 'reviews', version: 'v1' }, { ip: '10.0.1.1' });
    seedMeshPod(server, 'reviews-v2-a', { app: 'reviews', version: 'v2' }, { ip: '10.0.1.2' });
    server.store.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'plain', namespace: 'default', labels: { app: 'reviews' } }, spec: { containers: [{ name: 'app', image: 'x' }] } });
    server.store.create(slice('reviews-abc', 'reviews', [{ pod: 'reviews-v1-a', ip: '10.0.1.1' }, { pod: 'reviews-v2-a', ip: '10.0.1.2', ready: false }, { pod: 'plain', ip: '10.0.1.9' }]));
    ({ kube, platform, registry, stop } = await startWatchedRegistry(server, TD));
  });
  after(() => stop());

  it('serves the ready, meshed endpoints of EndpointSlices at the proxy port with the pod ServiceAccount identity', () => {
    assert.deepEqual(endpointsOf(registry.snapshot, 'reviews'), ['10.0.1.1:4143 v1 spiffe://cluster.local/ns/default/sa/reviews']);
  });

  it('follows EndpointSlice and Pod changes through the watch', async () => {
    server.store.put(slice('reviews-abc', 'reviews', [{ pod: 'reviews-v1-a', ip: '10.0.1.1' }, { pod: 'reviews-v2-a', ip: '10.0.1.2' }]));
    await waitFor('the v2 endpoint once ready', () => endpointsOf(registry.snapshot, 'reviews').length === 2, 5000, 5);
    seedMeshPod(server, 'reviews-v3-a', { app: 'reviews', version: 'v3' }, { ip: '10.0.1.3', sa: 'reviews-v3' });
    server.store.put(slice('reviews-abc', 'reviews', [{ pod: 'reviews-v1-a', ip: '10.0.1.1' }, { pod: 'reviews-v3-a', ip: '10.0.1.3' }]));
    await waitFor('v3 in, v2 out', () => endpointsOf(registry.snapshot, 'reviews').join() === [
      '10.0.1.1:4143 v1 spiffe://cluster.local/ns/default/sa/reviews', '10.0.1.3:4143 v3 spiffe://cluster.local/ns/default/sa/reviews-v3',
    ].join(), 5000, 5);
    server.store.delete({ apiVersion: 'v1', kind: 'Pod', name: 'reviews-v3-a', namespace: 'default' });
    await waitFor('the deleted pod gone', () => endpointsOf(registry.snapshot, 'reviews').length === 1, 5000, 5);
  });

  it('resumes a cut watch from where it was, missing nothing', async () => {
    const before = platform.slices.watches;
    const lists = platform.slices.lists;
    server.cutWatches({ abrupt: true });
    server.store.create(slice('ratings-abc', 'ratings', [{ pod: 'reviews-v2-a', ip: '10.0.1.2' }]));
    await waitFor('a slice created while the watch was cut', () => endpointsOf(registry.snapshot, 'ratings').length === 1, 5000, 5);
    assert.ok(platform.slices.watches > before, 'the watch was started again');
    assert.equal(platform.slices.lists, lists, 'a resumed watch does not list again');
  });

  it('lists again after 410 Gone and drops what was deleted while it was away', async () => {
    const lists = platform.slices.lists;
    // Keep the watch away (403 on watch only), change things, and forget the history it would resume from.
    const rule = { verb: 'watch', group: 'discovery.k8s.io', resource: 'endpointslices' };
    server.deny.push(rule);
    server.cutWatches();
    await waitFor('a refused resume', () => server.requests.some((r) => r.method === 'GET' && /endpointslices/.test(r.path) && r.query.watch === 'true'), 5000, 5);
    server.store.delete({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', name: 'ratings-abc', namespace: 'default' });
    server.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'bump', namespace: 'default' } });
    server.compactHistory();
    server.deny.splice(server.deny.indexOf(rule), 1);
    await waitFor('a new list after 410 Gone', () => platform.slices.lists > lists, 5000, 5);
    await waitFor('the slice deleted while away gone from the snapshot', () => endpointsOf(registry.snapshot, 'ratings').length === 0, 5000, 5);
    assert.deepEqual(endpointsOf(registry.snapshot, 'reviews'), ['10.0.1.1:4143 v1 spiffe://cluster.local/ns/default/sa/reviews']);
  });

  it('puts Route resources into the snapshot and follows their changes', async () => {
    const route = (weights: [number, number]): Obj => ({
      apiVersion: 'mesh.io/v1alpha1', kind: 'Route', metadata: { name: 'reviews', namespace: 'default' },
      spec: { rules: [{ backends: [{ version: 'v1', weight: weights[0] }, { version: 'v2', weight: weights[1] }] }] },
    });
    server.store.create(route([80, 20]));
    const weights = () => (registry.snapshot.config?.routes as Obj | undefined)?.routes?.[0]?.spec.rules[0].backends.map((b: Obj) => b.weight).join('/');
    await waitFor('the route in the snapshot', () => weights() === '80/20', 5000, 5);
    server.store.put(route([50, 50]));
    await waitFor('the changed route', () => weights() === '50/50', 5000, 5);
    server.store.delete({ apiVersion: 'mesh.io/v1alpha1', kind: 'Route', name: 'reviews', namespace: 'default' });
    await waitFor('the route removed', () => (registry.snapshot.config?.routes as Obj).routes.length === 0, 5000, 5);
  });

  it("publishes a meshed Service's ports with named targetPorts resolved through its EndpointSlice, and follows changes", async () => {
    const portsOf = (service: string) => JSON.stringify(registry.snapshot.services.find((s) => s.name === service)?.ports);
    const svc = (ports: Obj[]): Obj => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: 'default' }, spec: { selector: { app: 'reviews' }, ports } });
    assert.equal(portsOf('reviews'), undefined, 'no ports before there is a Service');
    // The slice's port 'http' is 9080: what the named targetPort resolved to. A port named grpc serves h2c (as Istio reads names).
    server.store.create(svc([{ name: 'http', port: 80, targetPort: 'http' }, { name: 'grpc', port: 81, targetPort: 9081 }]));
    await waitFor('the ports in the snapshot', () => portsOf('reviews') === JSON.stringify([{ port: 80, targetPort: 9080 }, { port: 81, targetPort: 9081, appProtocol: 'h2c' }]), 5000, 5);
    server.store.put(svc([{ name: 'http', port: 80, targetPort: 9443 }]));
    await waitFor('the changed ports', () => portsOf('reviews') === JSON.stringify([{ port: 80, targetPort: 9443 }]), 5000, 5);
    // A Service with no meshed endpoints is not in the snapshot, and changing it pushes nothing.
    const version = registry.snapshot.version;
    server.store.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'plain', namespace: 'default' }, spec: { ports: [{ port: 80, targetPort: 8080 }] } });
    await waitFor('the other Service seen', () => platform.services.items.has('default/plain'), 5000, 5);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(registry.snapshot.version, version);
    server.store.delete({ apiVersion: 'v1', kind: 'Service', name: 'reviews', namespace: 'default' });
    await waitFor('the ports gone with the Service', () => portsOf('reviews') === undefined, 5000, 5);
    assert.deepEqual(endpointsOf(registry.snapshot, 'reviews'), ['10.0.1.1:4143 v1 spiffe://cluster.local/ns/default/sa/reviews']);
  });

  it("does not route to a proxy's own registration once the platform supplies the endpoints", () => {
    registry.upsert({ instance: 'self-registered', namespace: 'default', service: 'reviews', version: 'v1', address: '127.0.0.1', port: 4143, identity: 'spiffe://cluster.local/ns/default/sa/reviews', registeredAt: new Date().toISOString() });
    assert.ok(registry.list().some((e) => e.instance === 'self-registered'));
    assert.ok(!endpointsOf(registry.snapshot, 'reviews').some((e) => e.startsWith('127.0.0.1')));
    registry.remove('self-registered');
  });

  it('refuses config written through the control plane, pointing at the resources, and changes nothing', () => {
    const before = registry.snapshot.version;
    assert.throws(() => registry.setConfig('routes', { routes: [] }), (e: Error & { status?: number }) => e.status === 405 && /Route resources: use 'mesh route --platform kubernetes' or kubectl apply/.test(e.message));
    assert.equal(registry.snapshot.version, before);
  });

  describe('certificates for ServiceAccount tokens', () => {
    let control: https.Server;
    let port: number;

    before(async () => {
      const identity = await generateIdentity(TD);
      const objs = renderControlPlane({ version: 'test', image: 'x', trustDomain: TD, certLifetime: '24h', identity, webhook: await generateWebhookCert(TD) });
      for (const o of objs) if (o.kind === 'Namespace' || o.metadata.name === ISSUER_SECRET || o.metadata.name === TRUST_ROOTS_CONFIGMAP) server.store.create(o as Obj);
      const id = await readKubeIdentity(kube);
      const kp = await generateKey();
      const cert = id.issuer.issueLeaf({ uri: `spiffe://${TD}/ns/mesh-system/sa/mesh-control`, publicKeyPem: kp.publicKeyPem, lifetimeMs: DAY, ips: ['127.0.0.1'] });
      control = createControlServer({
        trustDomain: TD, trustAnchorsPem: id.trustAnchorsPem, issuer: id.issuer, issuerCertPem: id.issuerCertPem, certLifetimeMs: DAY, registry,
        auth: { adminToken: 'admin', joinTokenFor: () => 'unused-join-token', bootstrap: tokenReviewBootstrap(kube) },
        tls: { cert: cert + id.issuerCertPem, key: kp.keyPem },
      });
      await new Promise<void>((r) => control.listen(0, '127.0.0.1', r));
      port = (control.address() as AddressInfo).port;
    });
    after(async () => {
      control.closeAllConnections();
      await new Promise((r) => control.close(r));
    });

    const requestCert = async (token: string, serviceAccount: string) => {
      const kp = await generateKey();
      return asProxy(port).call('POST', '/v1/certificates', { bearer: token, body: { namespace: 'default', serviceAccount, csr: createCsr(kp, serviceAccount) } });
    };

    it('issues exactly the identity of the ServiceAccount the token belongs to', async () => {
      const r = await requestCert('token-reviews', 'reviews');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.identity, 'spiffe://cluster.local/ns/default/sa/reviews');
      assert.deepEqual(uriSans(new X509Certificate(r.body.certificate).raw), ['spiffe://cluster.local/ns/default/sa/reviews']);
    });

    it("refuses another ServiceAccount's identity, a token for another audience, an unknown token and the join token with 403", async () => {
      for (const [token, sa] of [['token-productpage', 'reviews'], ['token-other-audience', 'reviews'], ['nonsense', 'reviews'], ['unused-join-token', 'reviews']] as const) {
        const r = await requestCert(token, sa);
        assert.equal(r.status, 403, `${token} as ${sa}: ${JSON.stringify(r.body)}`);
        assert.match(r.body.error, /not authorized to obtain identity spiffe:\/\/cluster.local\/ns\/default\/sa\/reviews/);
      }
    });
  });
});
