// Workloads as users name them on Kubernetes (issue 16, bugs 1 and 2): a pod's workload from its owners, policy's
// `--to` as a Service and `--from` as a workload whose identities are its pods' ServiceAccounts (Istio-style
// accounts: bookinfo-reviews for Service reviews), stat rows per workload with meshed/all pods. Pure functions,
// then the control plane's snapshot against the fake API server.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFakeApiServer, type FakeApiServer } from './support/kube/fake-api-server.js';
import { waitFor } from './support/mesh.js';
import { startWatchedRegistry } from './support/kube-mesh.js';
import { renderCrds } from '../src/platform/kubernetes/crds.js';
import { meshed, podRecords } from '../src/platform/kubernetes/control-platform.js';
import { workloadNames, workloadOf } from '../src/platform/kubernetes/workloads.js';
import type { EndpointSlice, Pod } from '../src/platform/kubernetes/resources.js';
import { Registry } from '../src/control/registry.js';
import { podInfo } from '../src/control/telemetry/source.js';
import { computeStat } from '../src/control/telemetry/stat.js';
import type { StatQuery } from '../src/api/telemetry.js';
import { compilePolicy, newPolicy, validatePolicy, type AuthzRequest } from '../src/model/policy.js';
import { injectYaml } from '../src/platform/kubernetes/inject.js';
import { injectOpts } from './support/kube-fixtures.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const TD = 'cluster.local';
const id = (sa: string, ns = 'default') => `spiffe://${TD}/ns/${ns}/sa/${sa}`;

/** A pod as a Deployment's ReplicaSet makes it (or owned by `owner`), meshed unless told. */
function pod(name: string, sa: string, o: { owner?: { kind: string; name: string }; hash?: string; version?: string; meshed?: boolean; phase?: string; ip?: string } = {}): Obj {
  const labels: Record<string, string> = { version: o.version ?? 'v1', ...(o.hash ? { 'pod-template-hash': o.hash } : {}) };
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: 'default', labels, ...(o.owner ? { ownerReferences: [{ apiVersion: 'apps/v1', ...o.owner, uid: `uid-${name}`, controller: true }] } : {}) },
    spec: {
      serviceAccountName: sa,
      ...(o.meshed === false ? {} : { initContainers: [{ name: 'mesh-proxy', image: 'ghcr.io/mesh/mesh:test', restartPolicy: 'Always' }] }),
      containers: [{ name: 'app', image: 'example/app' }],
    },
    status: { phase: o.phase ?? 'Running', podIP: o.ip ?? '10.0.0.1' },
  };
}

const slice = (service: string, pods: string[]): Obj => ({
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
  metadata: { name: `${service}-x`, namespace: 'default', labels: { 'kubernetes.io/service-name': service } },
  ports: [{ name: 'http', port: 9080, protocol: 'TCP' }],
  endpoints: pods.map((p, i) => ({ addresses: [`10.0.2.${i + 1}`], conditions: { ready: true }, targetRef: { kind: 'Pod', name: p, namespace: 'default' } })),
});

/** Bookinfo with Istio's account names, reviews-v3 as a Deployment named reviews-canary, a Job and an unmeshed pod. */
const bookinfo = (): { pods: Pod[]; slices: EndpointSlice[] } => ({
  pods: [
    pod('productpage-v1-7d9f-abcde', 'bookinfo-productpage', { owner: { kind: 'ReplicaSet', name: 'productpage-v1-7d9f' }, hash: '7d9f' }),
    pod('reviews-v1-5b6c-aaaaa', 'bookinfo-reviews', { owner: { kind: 'ReplicaSet', name: 'reviews-v1-5b6c' }, hash: '5b6c' }),
    pod('reviews-v2-6c7d-bbbbb', 'bookinfo-reviews', { owner: { kind: 'ReplicaSet', name: 'reviews-v2-6c7d' }, hash: '6c7d', version: 'v2' }),
    pod('reviews-canary-8e9f-ccccc', 'bookinfo-reviews', { owner: { kind: 'ReplicaSet', name: 'reviews-canary-8e9f' }, hash: '8e9f', version: 'v3' }),
    pod('reviews-canary-8e9f-ddddd', 'bookinfo-reviews', { owner: { kind: 'ReplicaSet', name: 'reviews-canary-8e9f' }, hash: '8e9f', version: 'v3', meshed: false }),
    pod('ratings-0', 'bookinfo-ratings', { owner: { kind: 'StatefulSet', name: 'ratings' } }),
    pod('load-x7k2p', 'loadgen', { owner: { kind: 'Job', name: 'load' } }),
    pod('old-load-abcde', 'loadgen', { owner: { kind: 'Job', name: 'old-load' }, phase: 'Succeeded' }),
  ],
  slices: [
    slice('productpage', ['productpage-v1-7d9f-abcde']),
    slice('reviews', ['reviews-v1-5b6c-aaaaa', 'reviews-v2-6c7d-bbbbb', 'reviews-canary-8e9f-ccccc', 'reviews-canary-8e9f-ddddd']),
    slice('ratings', ['ratings-0']),
  ],
});

describe('workloads named from their owners', () => {
  it('finds the Deployment behind a ReplicaSet by the pod-template-hash, and the other owners as they are', () => {
    const of = (p: Pod) => workloadOf(p.metadata);
    const { pods } = bookinfo();
    assert.deepEqual(of(pods[3]!), { kind: 'Deployment', name: 'reviews-canary' });
    assert.deepEqual(of(pods[5]!), { kind: 'StatefulSet', name: 'ratings' });
    assert.deepEqual(of(pods[6]!), { kind: 'Job', name: 'load' });
    assert.deepEqual(workloadOf({ name: 'debug' }), { kind: 'Pod', name: 'debug' });
    // A ReplicaSet of its own (no hash label) is the workload.
    assert.deepEqual(workloadOf({ name: 'x-1', ownerReferences: [{ kind: 'ReplicaSet', name: 'x', controller: true }] }), { kind: 'ReplicaSet', name: 'x' });
  });

  it('maps Services and workloads to their live pods\' ServiceAccounts, and meshed pods to their Services', () => {
    const { pods, slices } = bookinfo();
    const names = workloadNames(pods, slices, meshed);
    assert.deepEqual(names.identities['default/reviews'], ['bookinfo-reviews']);
    assert.deepEqual(names.identities['default/productpage'], ['bookinfo-productpage']);
    assert.deepEqual(names.identities['default/productpage-v1'], ['bookinfo-productpage']);
    assert.deepEqual(names.identities['default/load'], ['loadgen']);
    assert.equal(names.identities['default/old-load'], undefined, 'a finished Job has no live identity');
    assert.deepEqual(names.pods['default/reviews-canary-8e9f-ccccc'], { workload: 'reviews-canary', services: ['reviews'] });
    assert.equal(names.pods['default/reviews-canary-8e9f-ddddd'], undefined, 'an unmeshed pod has no proxy to tell');
  });

  it('names the proxy\'s workload in inject: the template\'s owner, or the pod\'s owners for the webhook', () => {
    const deploy = ['apiVersion: apps/v1', 'kind: Deployment', 'metadata: {name: reviews-canary}', 'spec:', '  template:', '    metadata: {labels: {app: reviews}}',
      '    spec: {containers: [{name: app, image: x}]}'].join('\n');
    assert.match(injectYaml(deploy, injectOpts()).output, /name: MESH_WORKLOAD\n\s+value: reviews-canary/);
    const { pods } = bookinfo();
    assert.match(injectYaml(JSON.stringify({ ...pods[1], spec: { containers: [{ name: 'app', image: 'x' }] } }), injectOpts()).output, /name: MESH_WORKLOAD\n\s+value: reviews-v1\n/);
  });
});

describe('policy names on kubernetes: --to a Service, --from a workload or sa:NAME', () => {
  const { pods, slices } = bookinfo();
  const names = workloadNames(pods, slices, meshed);
  const policy = (rules: { from: string; to: string }[]) => ({ policies: [newPolicy('default', 'deny', rules)] });
  const req = (from: string, toServices: string[]): AuthzRequest => ({ namespace: 'default', toService: 'bookinfo-reviews', toServices, clientIdentity: id(from), path: '/reviews/0' });

  it('lets productpage reach reviews when accounts are named otherwise', () => {
    const c = compilePolicy(policy([{ from: 'productpage', to: 'reviews' }]), names);
    assert.equal(c.check(req('bookinfo-productpage', ['reviews'])).allowed, true);
    assert.equal(c.check(req('bookinfo-ratings', ['reviews'])).allowed, false);
    assert.equal(c.check(req('bookinfo-productpage', ['ratings'])).allowed, false, 'the rule is for reviews only');
    // The Deployment's name works as well as the Service's.
    assert.equal(compilePolicy(policy([{ from: 'productpage-v1', to: 'reviews' }]), names).check(req('bookinfo-productpage', ['reviews'])).allowed, true);
  });

  it('takes sa:NAME for an account, and a workload with no live pod stands for nobody', () => {
    assert.equal(compilePolicy(policy([{ from: 'sa:bookinfo-productpage', to: 'reviews' }]), names).check(req('bookinfo-productpage', ['reviews'])).allowed, true);
    const gone = compilePolicy(policy([{ from: 'old-load', to: 'reviews' }]), names);
    assert.equal(gone.check(req('loadgen', ['reviews'])).allowed, false);
    assert.equal(gone.check(req('old-load', ['reviews'])).allowed, false, 'a workload name is not an account name on kubernetes');
  });

  it('allows a pod behind two Services when either is allowed; a pod behind none takes the rules for every service', () => {
    const c = compilePolicy(policy([{ from: 'productpage', to: 'ratings' }, { from: 'load', to: '*' }]), names);
    assert.equal(c.check(req('bookinfo-productpage', ['reviews', 'ratings'])).allowed, true);
    assert.equal(c.check(req('bookinfo-productpage', [])).allowed, false);
    assert.equal(c.check(req('loadgen', [])).allowed, true);
  });

  it('validates sa:NAME and keeps the local meaning without the platform\'s names', () => {
    assert.deepEqual(validatePolicy(newPolicy('default', 'deny', [{ from: 'sa:bookinfo-productpage', to: 'reviews' }, { from: 'other/sa:x', to: 'reviews' }])).errors, []);
    assert.match(validatePolicy(newPolicy('default', 'deny', [{ from: 'sa:Bad', to: 'reviews' }])).errors[0]!, /service account 'Bad'/);
    const local = compilePolicy(policy([{ from: 'web', to: 'api' }]));
    assert.equal(local.check({ namespace: 'default', toService: 'api', clientIdentity: id('web'), path: '/' }).allowed, true);
  });
});

describe('stat rows per workload', () => {
  it('names rows by owner and counts meshed of all pods', async () => {
    const { pods, slices } = bookinfo();
    const infos = podRecords(pods, slices, TD).map(podInfo);
    const src = {
      name: 'test', maxWindowMs: 60_000, notice: () => undefined,
      pods: async () => infos, rate: async () => [], quantile: async () => [], gauge: async () => [],
    };
    const q: StatQuery = { kind: 'deployment', namespace: 'default', allNamespaces: false, windowMs: 60_000 };
    const rows = (await computeStat(src, q)).rows.map((r) => `${r.name} ${r.meshed}`);
    assert.deepEqual(rows, ['load 1/1', 'productpage-v1 1/1', 'ratings 1/1', 'reviews-canary 1/2', 'reviews-v1 1/1', 'reviews-v2 1/1']);
    const one = await computeStat(src, { ...q, name: 'reviews-canary' });
    assert.equal(one.rows.length, 1);
    const podRows = (await computeStat(src, { ...q, kind: 'pod' })).rows.map((r) => r.name);
    assert.equal(podRows.length, new Set(podRows).size, 'each pod once');
    assert.ok(podRows.every((n) => !n.endsWith('.default')));
  });
});

describe('the control plane\'s snapshot carries the names (fake API server)', () => {
  let server: FakeApiServer;
  let registry: Registry;
  let stop: () => Promise<void>;

  before(async () => {
    server = await startFakeApiServer();
    for (const crd of renderCrds()) server.store.create(crd as Obj);
    const { pods, slices } = bookinfo();
    for (const o of [...pods, ...slices]) server.store.create(o as Obj);
    ({ registry, stop } = await startWatchedRegistry(server, TD));
  });
  after(() => stop());

  it('has every meshed pod\'s Services and workload, endpoints named by workload, and follows changes', async () => {
    const snap = registry.snapshot;
    assert.deepEqual(snap.workloads?.pods['default/productpage-v1-7d9f-abcde'], { workload: 'productpage-v1', services: ['productpage'] });
    assert.deepEqual(snap.services.find((s) => s.name === 'reviews')?.endpoints.map((e) => e.workload).sort(), ['reviews-canary', 'reviews-v1', 'reviews-v2']);
    server.store.create(pod('details-v1-1a2b-eeeee', 'bookinfo-details', { owner: { kind: 'ReplicaSet', name: 'details-v1-1a2b' }, hash: '1a2b' }));
    server.store.create(slice('details', ['details-v1-1a2b-eeeee']));
    await waitFor('the details Service in the names', () => registry.snapshot.workloads?.identities['default/details']?.[0] === 'bookinfo-details', 5000, 10);
    const c = compilePolicy({ policies: [newPolicy('default', 'deny', [{ from: 'productpage', to: 'details' }])] }, registry.snapshot.workloads);
    assert.equal(c.check({ namespace: 'default', toService: 'bookinfo-details', toServices: ['details'], clientIdentity: id('bookinfo-productpage'), path: '/' }).allowed, true);
  });
});
