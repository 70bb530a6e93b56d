// The fake Kubernetes API server, driven only through @kubernetes/client-node: discovery, auth, CRUD and errors.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  AdmissionregistrationV1Api, ApisApi, AuthenticationV1Api, AuthorizationV1Api, CoreApi, CoreV1Api, KubeConfig,
  KubernetesObjectApi, RbacAuthorizationV1Api, VersionApi, type V1ConfigMap,
} from '@kubernetes/client-node';
import { startFakeApiServer, type FakeApiServer } from './support/kube/fake-api-server.js';
import { expectCode, expectStatus, kubeConfigFor } from './support/kube/testing.js';

describe('fake kube API server: discovery, auth and core CRUD', () => {
  let server: FakeApiServer;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let dir: string;

  before(async () => {
    server = await startFakeApiServer({
      gitVersion: 'v1.30.4',
      deny: [{ verb: 'delete', group: '', resource: 'secrets', namespace: 'locked' }],
      tokenReviews: { 'sa-token': { username: 'system:serviceaccount:mesh:proxy', uid: 'u-1', groups: ['system:serviceaccounts', 'system:serviceaccounts:mesh', 'system:authenticated'] } },
    });
    dir = await mkdtemp(join(tmpdir(), 'fake-kube-'));
    kc = new KubeConfig();
    kc.loadFromFile(server.writeKubeconfig(dir));
    core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'app' } } });
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves version and discovery over HTTPS verified with the kubeconfig CA', async () => {
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const version = await kc.makeApiClient(VersionApi).getCode();
    assert.equal(version.gitVersion, 'v1.30.4');
    assert.equal(version.minor, '30');
    const apiVersions = await kc.makeApiClient(CoreApi).getAPIVersions();
    assert.deepEqual(apiVersions.versions, ['v1']);
    const groups = await kc.makeApiClient(ApisApi).getAPIVersions();
    const names = groups.groups.map((g) => g.name);
    for (const g of ['apps', 'batch', 'rbac.authorization.k8s.io', 'apiextensions.k8s.io', 'discovery.k8s.io', 'admissionregistration.k8s.io']) {
      assert.ok(names.includes(g), `group ${g} listed`);
    }
    const resources = await core.getAPIResources();
    const pods = resources.resources.find((r) => r.name === 'pods');
    assert.equal(pods?.kind, 'Pod');
    assert.equal(pods?.namespaced, true);
    assert.ok(resources.resources.some((r) => r.name === 'pods/status'));
    assert.equal(resources.resources.find((r) => r.name === 'namespaces')?.namespaced, false);
  });

  it('answers 401 Unauthorized without the right bearer token', async () => {
    const wrong = new KubeConfig();
    wrong.loadFromString(server.kubeconfigYaml.replace(/token: .*/, 'token: wrong'));
    await expectCode(wrong.makeApiClient(CoreV1Api).listNamespace(), 401);
    // The generated clients drop 401 bodies; KubernetesObjectApi keeps them.
    const status = await expectStatus(KubernetesObjectApi.makeApiClient(wrong).read({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'app' } }), 401, 'Unauthorized');
    assert.equal(status.message, 'Unauthorized');
    const anonymous = new KubeConfig();
    anonymous.loadFromOptions({
      clusters: kc.clusters, users: [{ name: 'anonymous' }],
      contexts: [{ name: 'anon', cluster: kc.clusters[0].name, user: 'anonymous' }], currentContext: 'anon',
    });
    await expectCode(anonymous.makeApiClient(VersionApi).getCode(), 401);
  });

  it('seeds a realistic cluster: system namespaces, the kubernetes service, namespace defaults', async () => {
    const ns = await core.listNamespace();
    const names = ns.items.map((n) => n.metadata?.name);
    for (const n of ['default', 'kube-system', 'kube-public', 'kube-node-lease', 'app']) assert.ok(names.includes(n), n);
    const svc = await core.readNamespacedService({ name: 'kubernetes', namespace: 'default' });
    assert.equal(svc.spec?.clusterIP, '10.96.0.1');
    const sa = await core.readNamespacedServiceAccount({ name: 'default', namespace: 'app' });
    assert.equal(sa.metadata?.namespace, 'app');
    const app = await core.readNamespace({ name: 'app' });
    assert.equal(app.status?.phase, 'Active');
    assert.equal(app.metadata?.labels?.['kubernetes.io/metadata.name'], 'app');
  });

  it('creates, gets and lists with label and field selectors', async () => {
    const mk = (name: string, labels: Record<string, string>): V1ConfigMap => ({ metadata: { name, labels }, data: { k: name } });
    const a = await core.createNamespacedConfigMap({ namespace: 'app', body: mk('sel-a', { tier: 'web', env: 'prod' }) });
    await core.createNamespacedConfigMap({ namespace: 'app', body: mk('sel-b', { tier: 'db', env: 'prod' }) });
    await core.createNamespacedConfigMap({ namespace: 'app', body: mk('sel-c', { tier: 'web' }) });
    assert.ok(a.metadata?.uid);
    assert.match(a.metadata?.resourceVersion ?? '', /^\d+$/);
    assert.ok(a.metadata?.creationTimestamp instanceof Date);

    const got = await core.readNamespacedConfigMap({ name: 'sel-a', namespace: 'app' });
    assert.deepEqual(got.data, { k: 'sel-a' });
    assert.equal(got.metadata?.resourceVersion, a.metadata?.resourceVersion);

    const names = async (labelSelector?: string, fieldSelector?: string) =>
      (await core.listNamespacedConfigMap({ namespace: 'app', labelSelector, fieldSelector })).items.map((i) => i.metadata?.name).filter((n) => n?.startsWith('sel-'));
    assert.deepEqual(await names('tier=web'), ['sel-a', 'sel-c']);
    assert.deepEqual(await names('tier==web,env=prod'), ['sel-a']);
    assert.deepEqual(await names('env!=prod'), ['sel-c']);
    assert.deepEqual(await names('tier in (db, web),env'), ['sel-a', 'sel-b']);
    assert.deepEqual(await names('tier notin (web)'), ['sel-b']);
    assert.deepEqual(await names('!env'), ['sel-c']);
    assert.deepEqual(await names(undefined, 'metadata.name=sel-b'), ['sel-b']);
    assert.deepEqual(await names(undefined, 'metadata.name!=sel-b,metadata.namespace=app'), ['sel-a', 'sel-c']);
    await expectStatus(core.listNamespacedConfigMap({ namespace: 'app', fieldSelector: 'data.k=x' }), 400, 'BadRequest');

    const list = await core.listNamespacedConfigMap({ namespace: 'app' });
    assert.ok(Number(list.metadata?.resourceVersion) >= Number(a.metadata?.resourceVersion));
    const all = await core.listConfigMapForAllNamespaces({ labelSelector: 'tier' });
    assert.equal(all.items.length, 3);
  });

  it('paginates lists with limit and continue', async () => {
    for (const n of ['p1', 'p2', 'p3']) await core.createNamespacedConfigMap({ namespace: 'app', body: { metadata: { name: n, labels: { page: 'yes' } } } });
    const first = await core.listNamespacedConfigMap({ namespace: 'app', labelSelector: 'page', limit: 2 });
    assert.deepEqual(first.items.map((i) => i.metadata?.name), ['p1', 'p2']);
    assert.equal(first.metadata?.remainingItemCount, 1);
    const rest = await core.listNamespacedConfigMap({ namespace: 'app', labelSelector: 'page', limit: 2, _continue: first.metadata?._continue });
    assert.deepEqual(rest.items.map((i) => i.metadata?.name), ['p3']);
    assert.equal(rest.metadata?._continue, undefined);
  });

  it('serves cluster-scoped RBAC and admission webhook configurations', async () => {
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createClusterRole({ body: { metadata: { name: 'mesh:control-plane' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }] } });
    await rbac.createClusterRoleBinding({
      body: { metadata: { name: 'mesh:control-plane' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'mesh:control-plane' }, subjects: [{ kind: 'ServiceAccount', name: 'control', namespace: 'app' }] },
    });
    assert.equal((await rbac.readClusterRole({ name: 'mesh:control-plane' })).rules?.[0].verbs.length, 3);
    const hooks = kc.makeApiClient(AdmissionregistrationV1Api);
    const hook = await hooks.createMutatingWebhookConfiguration({
      body: {
        metadata: { name: 'mesh-injector' },
        webhooks: [{ name: 'inject.mesh.io', admissionReviewVersions: ['v1'], sideEffects: 'None', clientConfig: { service: { name: 'injector', namespace: 'app', path: '/inject' } } }],
      },
    });
    assert.equal(hook.metadata?.generation, 1);
    assert.deepEqual((await hooks.listMutatingWebhookConfiguration()).items.map((h) => h.metadata?.name), ['mesh-injector']);
  });

  it('can serve plain HTTP', async () => {
    const plain = await startFakeApiServer({ tls: false, seedDefaults: false });
    try {
      assert.match(plain.url, /^http:\/\//);
      assert.equal((await kubeConfigFor(plain).makeApiClient(VersionApi).getCode()).gitVersion, 'v1.31.0');
    } finally {
      await plain.close();
    }
  });

  it('returns NotFound, AlreadyExists and Invalid Status errors like the real API', async () => {
    const missing = await expectStatus(core.readNamespacedConfigMap({ name: 'nope', namespace: 'app' }), 404, 'NotFound');
    assert.equal(missing.message, 'configmaps "nope" not found');
    assert.deepEqual(missing.details, { name: 'nope', kind: 'configmaps' });

    await core.createNamespacedSecret({ namespace: 'app', body: { metadata: { name: 'dup' }, stringData: { password: 'x' } } });
    const dup = await expectStatus(core.createNamespacedSecret({ namespace: 'app', body: { metadata: { name: 'dup' } } }), 409, 'AlreadyExists');
    assert.equal(dup.message, 'secrets "dup" already exists');
    const secret = await core.readNamespacedSecret({ name: 'dup', namespace: 'app' });
    assert.equal(secret.data?.password, Buffer.from('x').toString('base64'));
    assert.equal(secret.type, 'Opaque');

    const bad = await expectStatus(core.createNamespacedConfigMap({ namespace: 'app', body: { metadata: { name: 'Bad_Name' } } }), 422, 'Invalid');
    assert.equal(bad.details?.causes?.[0].field, 'metadata.name');
    assert.match(bad.message, /^ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/);
    const noName = await expectStatus(core.createNamespacedConfigMap({ namespace: 'app', body: { data: {} } }), 422, 'Invalid');
    assert.match(noName.message, /name or generateName is required/);

    const noNs = await expectStatus(core.createNamespacedConfigMap({ namespace: 'ghost', body: { metadata: { name: 'x' } } }), 404, 'NotFound');
    assert.equal(noNs.message, 'namespaces "ghost" not found');

    const kind = await expectStatus(core.createNamespacedConfigMap({ namespace: 'app', body: { apiVersion: 'apps/v1', kind: 'ConfigMap', metadata: { name: 'k' } } }), 400, 'BadRequest');
    assert.match(kind.message, /does not match the expected API version \(v1\)/);

    const withRv = await expectStatus(core.createNamespacedConfigMap({ namespace: 'app', body: { metadata: { name: 'rv', resourceVersion: '5' } } }), 500);
    assert.equal(withRv.message, 'resourceVersion should not be set on objects to be created');

    const generated = await core.createNamespacedConfigMap({ namespace: 'app', body: { metadata: { generateName: 'gen-' } } });
    assert.match(generated.metadata?.name ?? '', /^gen-[a-z0-9]{5}$/);
  });

  it('updates with optimistic concurrency: 409 Conflict on a stale resourceVersion, 404 when missing', async () => {
    const cm = await core.createNamespacedConfigMap({ namespace: 'app', body: { metadata: { name: 'occ' }, data: { v: '1' } } });
    const updated = await core.replaceNamespacedConfigMap({ name: 'occ', namespace: 'app', body: { ...cm, data: { v: '2' } } });
    assert.ok(Number(updated.metadata?.resourceVersion) > Number(cm.metadata?.resourceVersion));
    const stale = await expectStatus(core.replaceNamespacedConfigMap({ name: 'occ', namespace: 'app', body: { ...cm, data: { v: '3' } } }), 409, 'Conflict');
    assert.match(stale.message, /^Operation cannot be fulfilled on configmaps "occ": the object has been modified/);
    const same = await core.replaceNamespacedConfigMap({ name: 'occ', namespace: 'app', body: updated });
    assert.equal(same.metadata?.resourceVersion, updated.metadata?.resourceVersion, 'a no-op update keeps the resourceVersion');
    await expectStatus(core.replaceNamespacedConfigMap({ name: 'gone', namespace: 'app', body: { metadata: { name: 'gone' } } }), 404, 'NotFound');
  });

  it('supports dryRun=All on create without storing anything', async () => {
    const dry = await core.createNamespacedConfigMap({ namespace: 'app', dryRun: 'All', body: { metadata: { name: 'dry' } } });
    assert.equal(dry.metadata?.name, 'dry');
    await expectStatus(core.readNamespacedConfigMap({ name: 'dry', namespace: 'app' }), 404);
    await expectStatus(core.createNamespacedConfigMap({ namespace: 'app', dryRun: 'All', body: { metadata: { name: 'BAD' } } }), 422);
  });

  it('deletes objects, returns the right body, and cascades namespace deletion', async () => {
    await core.createNamespace({ body: { metadata: { name: 'doomed' } } });
    await core.createNamespacedConfigMap({ namespace: 'doomed', body: { metadata: { name: 'c1' } } });
    const status = await core.deleteNamespacedConfigMap({ name: 'c1', namespace: 'doomed' });
    assert.equal(status.status, 'Success');
    await core.createNamespacedConfigMap({ namespace: 'doomed', body: { metadata: { name: 'c2' } } });
    const ns = await core.deleteNamespace({ name: 'doomed' });
    assert.equal(ns.kind, 'Namespace');
    assert.equal(server.store.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'c2', namespace: 'doomed' }), undefined);
    await expectStatus(core.readNamespace({ name: 'doomed' }), 404);
    await expectStatus(core.deleteNamespacedConfigMap({ name: 'c1', namespace: 'app' }), 404);
  });

  it('keeps objects with finalizers until the last finalizer is removed', async () => {
    await core.createNamespacedConfigMap({ namespace: 'app', body: { metadata: { name: 'fin', finalizers: ['mesh.io/cleanup'] } } });
    await core.deleteNamespacedConfigMap({ name: 'fin', namespace: 'app' });
    const pending = await core.readNamespacedConfigMap({ name: 'fin', namespace: 'app' });
    assert.ok(pending.metadata?.deletionTimestamp);
    await core.replaceNamespacedConfigMap({ name: 'fin', namespace: 'app', body: { ...pending, metadata: { ...pending.metadata, finalizers: [] } } });
    await expectStatus(core.readNamespacedConfigMap({ name: 'fin', namespace: 'app' }), 404);
  });

  it('answers SelfSubjectAccessReview from the deny list and enforces it with 403', async () => {
    const authz = kc.makeApiClient(AuthorizationV1Api);
    const review = (verb: string, namespace: string) => authz.createSelfSubjectAccessReview({
      body: { spec: { resourceAttributes: { verb, group: '', resource: 'secrets', namespace } } },
    });
    assert.equal((await review('delete', 'app')).status?.allowed, true);
    assert.equal((await review('delete', 'locked')).status?.allowed, false);
    await core.createNamespace({ body: { metadata: { name: 'locked' } } });
    await core.createNamespacedSecret({ namespace: 'locked', body: { metadata: { name: 's' } } });
    const forbidden = await expectStatus(core.deleteNamespacedSecret({ name: 's', namespace: 'locked' }), 403, 'Forbidden');
    assert.equal(forbidden.message, 'secrets "s" is forbidden: User "kubernetes-admin" cannot delete resource "secrets" in API group "" in the namespace "locked"');
    server.deny.length = 0;
    assert.equal((await review('delete', 'locked')).status?.allowed, true);
  });

  it('answers TokenReview from the configured tokens', async () => {
    const authn = kc.makeApiClient(AuthenticationV1Api);
    const ok = await authn.createTokenReview({ body: { spec: { token: 'sa-token' } } });
    assert.equal(ok.status?.authenticated, true);
    assert.equal(ok.status?.user?.username, 'system:serviceaccount:mesh:proxy');
    assert.equal(ok.status?.user?.uid, 'u-1');
    assert.ok(ok.status?.user?.groups?.includes('system:serviceaccounts:mesh'));
    const bad = await authn.createTokenReview({ body: { spec: { token: 'nope' } } });
    assert.equal(bad.status?.authenticated, false);
  });
});
