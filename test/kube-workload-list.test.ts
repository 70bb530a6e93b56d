// mesh --platform kubernetes workloads and demo's refusals, through the real CLI against the fake API server: pods
// named from their owners, with the Services that select them, their version, status and proxy; the system and
// control-plane namespaces left out. (The demo itself runs on a real cluster: test/kube-real.)
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startCliCluster } from './support/kube-mesh.js';
import { renderDemo } from '../src/platform/kubernetes/demo.js';
import { servicePortProtocol } from '../src/model/app-protocol.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('mesh --platform kubernetes workloads', () => {
  let c: Awaited<ReturnType<typeof startCliCluster>>;
  before(async () => {
    c = await startCliCluster('mesh-kube-workloads-');
    const pod = (namespace: string, name: string, o: { labels?: Obj; owner?: Obj; proxy?: boolean; status?: Obj } = {}) => c.server.store.create({
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name, namespace, labels: o.labels ?? {}, ...(o.owner ? { ownerReferences: [{ apiVersion: 'apps/v1', controller: true, uid: 'u', ...o.owner }] } : {}) },
      spec: {
        containers: [{ name: 'app', image: 'app' }],
        ...(o.proxy ? { initContainers: [{ name: 'mesh-proxy', image: 'mesh', restartPolicy: 'Always' }] } : {}),
      },
      status: o.status ?? { phase: 'Running', podIP: '10.0.0.9', containerStatuses: [{ name: 'app', ready: true, restartCount: 2, image: 'app', imageID: '' }],
        ...(o.proxy ? { initContainerStatuses: [{ name: 'mesh-proxy', ready: true, restartCount: 0, image: 'mesh', imageID: '' }] } : {}) },
    });
    for (const ns of ['shop', 'mesh-system']) c.server.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    pod('shop', 'reviews-canary-5d4f-abcde', { labels: { app: 'reviews', version: 'v3', 'pod-template-hash': '5d4f' }, owner: { kind: 'ReplicaSet', name: 'reviews-canary-5d4f' }, proxy: true });
    pod('shop', 'backup-x1', { owner: { apiVersion: 'batch/v1', kind: 'Job', name: 'backup' }, proxy: true, status: { phase: 'Succeeded' } });
    pod('shop', 'plain', { labels: { app: 'plain' } });
    pod('kube-system', 'coredns', {});
    pod('mesh-system', 'mesh-control-1', {});
    c.server.store.create({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: 'reviews-1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'reviews' } },
      addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.9'], targetRef: { kind: 'Pod', name: 'reviews-canary-5d4f-abcde', namespace: 'shop' } }],
    });
  });
  after(() => c.close());

  it('lists the user namespaces\' pods by workload, Service, version, status and proxy', async () => {
    const j = await c.run(['workloads', '-o', 'json']);
    assert.equal(j.code, 0, j.stderr);
    const recs = JSON.parse(j.stdout) as Obj[];
    assert.deepEqual(recs.map((r) => [r.namespace, r.pod, `${r.workload.kind}/${r.workload.name}`, r.services.join(), r.version ?? '-', r.status, r.proxy, r.restarts]), [
      ['shop', 'backup-x1', 'Job/backup', '', '-', 'Completed', 'exited', 0],
      ['shop', 'plain', 'Pod/plain', '', '-', 'Running', 'none', 2],
      ['shop', 'reviews-canary-5d4f-abcde', 'Deployment/reviews-canary', 'reviews', 'v3', 'Running', 'ready', 2],
    ]);
    const table = await c.run(['workloads']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^NAMESPACE\s+POD\s+WORKLOAD\s+SERVICE\s+VERSION\s+STATUS\s+PROXY\s+RESTARTS\s+AGE$/m);
    assert.match(table.stdout, /^shop\s+reviews-canary-5d4f-abcde\s+deploy\/reviews-canary\s+reviews\s+v3\s+Running\s+ready\s+2\s+/m);
    assert.match(table.stdout, /1 of 3 pods have no mesh proxy/);
  });

  it('demo refuses the local demo\'s flags, and says when mesh is not installed', async () => {
    const flag = await c.run(['demo', '--ingress-port', '8080']);
    assert.equal(flag.code, 1);
    assert.match(flag.stderr, /error: --ingress-port is for the local demo — on Kubernetes the product page is reached with kubectl port-forward/);
    const none = await c.run(['demo', '--no-traffic']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /error: mesh is not installed on fake \(no mesh-system\/mesh-identity-trust-roots\) — install it first/);
    assert.equal((await c.run(['demo', '--down'])).code, 0);
  });

  it('renders the sample with Istio-style ServiceAccounts, one Service per app on 9080, and traffic only when asked', () => {
    const objs = renderDemo({ image: 'mesh:test', rate: 0 });
    const deploys = objs.filter((o) => o.kind === 'Deployment') as Obj[];
    assert.deepEqual(deploys.map((d) => `${d.metadata.name}:${d.spec.template.spec.serviceAccountName}`), [
      'details-v1:bookinfo-details', 'ratings-v1:bookinfo-ratings', 'reviews-v1:bookinfo-reviews', 'reviews-v2:bookinfo-reviews',
      'reviews-v3:bookinfo-reviews', 'productpage-v1:bookinfo-productpage',
    ]);
    assert.deepEqual(objs.filter((o) => o.kind === 'Service').map((s) => s.metadata.name), ['details', 'ratings', 'reviews', 'productpage']);
    // ratings serves gRPC: its port says so, so its sidecar speaks HTTP/2 cleartext to it.
    const ports = (objs.filter((o) => o.kind === 'Service') as Obj[]).map((s) => `${s.metadata.name}:${s.spec.ports[0].name}:${s.spec.ports[0].appProtocol ?? '-'}`);
    assert.deepEqual(ports, ['details:http:-', 'ratings:grpc:grpc', 'reviews:http:-', 'productpage:http:-']);
    assert.equal(servicePortProtocol((objs.find((o) => o.kind === 'Service' && o.metadata.name === 'ratings') as Obj).spec.ports[0]), 'h2c');
    for (const d of deploys) assert.equal(d.spec.template.spec.containers[0].imagePullPolicy, 'IfNotPresent');
    assert.ok(renderDemo({ image: 'mesh:test', rate: 1 }).some((o) => o.metadata.name === 'traffic'));
  });
});
