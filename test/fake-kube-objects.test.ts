// The fake Kubernetes API server through @kubernetes/client-node: patch formats, server-side apply, subresources.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  AppsV1Api, CoreV1Api, KubernetesObjectApi, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Deployment,
} from '@kubernetes/client-node';
import { startFakeApiServer, type FakeApiServer } from './support/kube/fake-api-server.js';
import { expectStatus, kubeConfigFor } from './support/kube/testing.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const strategicPatch = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

function deployment(name: string, replicas = 1): V1Deployment {
  return {
    apiVersion: 'apps/v1', kind: 'Deployment',
    metadata: { name, namespace: 'app', labels: { app: name } },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'app', image: 'app:1', env: [{ name: 'A', value: '1' }] }, { name: 'sidecar', image: 'proxy:1' }] },
      },
    },
  };
}

describe('fake kube API server: patches, apply and subresources', () => {
  let server: FakeApiServer;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let apps: AppsV1Api;
  let objects: KubernetesObjectApi;

  before(async () => {
    server = await startFakeApiServer();
    kc = kubeConfigFor(server);
    core = kc.makeApiClient(CoreV1Api);
    apps = kc.makeApiClient(AppsV1Api);
    objects = KubernetesObjectApi.makeApiClient(kc);
    await core.createNamespace({ body: { metadata: { name: 'app' } } });
  });
  after(() => server.close());

  it('applies JSON merge patches (RFC 7386) chosen with setHeaderOptions', async () => {
    await core.createNamespacedConfigMap({ namespace: 'app', body: { metadata: { name: 'mp', labels: { a: '1', b: '2' } }, data: { x: '1', y: '2' } } });
    const patched = await core.patchNamespacedConfigMap({ name: 'mp', namespace: 'app', body: { metadata: { labels: { b: null, c: '3' } }, data: { y: null } } }, mergePatch);
    assert.deepEqual(patched.metadata?.labels, { a: '1', c: '3' });
    assert.deepEqual(patched.data, { x: '1' });
    const stale = { metadata: { resourceVersion: '1' }, data: { x: '2' } };
    await expectStatus(core.patchNamespacedConfigMap({ name: 'mp', namespace: 'app', body: stale }, mergePatch), 409, 'Conflict');
    await expectStatus(core.patchNamespacedConfigMap({ name: 'none', namespace: 'app', body: {} }, mergePatch), 404, 'NotFound');
  });

  it('applies JSON patches (RFC 6902), the generated clients\' default patch type', async () => {
    await core.createNamespacedConfigMap({ namespace: 'app', body: { metadata: { name: 'jp' }, data: { x: '1' } } });
    const patched = await core.patchNamespacedConfigMap({
      name: 'jp', namespace: 'app',
      body: [
        { op: 'test', path: '/data/x', value: '1' },
        { op: 'add', path: '/data/y', value: '2' },
        { op: 'replace', path: '/data/x', value: '9' },
        { op: 'add', path: '/metadata/labels', value: { 'mesh.io/x': 'on' } },
      ],
    });
    assert.deepEqual(patched.data, { x: '9', y: '2' });
    assert.deepEqual(patched.metadata?.labels, { 'mesh.io/x': 'on' });
    const failed = await expectStatus(core.patchNamespacedConfigMap({ name: 'jp', namespace: 'app', body: [{ op: 'test', path: '/data/x', value: '1' }] }), 422);
    assert.match(failed.message, /test failed/);
  });

  it('applies strategic merge patches, merging containers and env by name', async () => {
    await apps.createNamespacedDeployment({ namespace: 'app', body: deployment('smp') });
    const patched = await apps.patchNamespacedDeployment({
      name: 'smp', namespace: 'app',
      body: { spec: { template: { spec: { containers: [{ name: 'app', image: 'app:2', env: [{ name: 'B', value: '2' }] }] } } } },
    }, strategicPatch);
    const containers = patched.spec?.template.spec?.containers ?? [];
    assert.deepEqual(containers.map((c) => `${c.name}=${c.image}`), ['app=app:2', 'sidecar=proxy:1']);
    assert.deepEqual(containers[0].env?.map((e) => e.name), ['A', 'B']);
    // KubernetesObjectApi.patch defaults to strategic merge too.
    const viaObjects = await objects.patch({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'smp', namespace: 'app' }, spec: { replicas: 3 } });
    assert.equal((viaObjects as V1Deployment).spec?.replicas, 3);
  });

  it('does server-side apply with managedFields, conflicts and force', async () => {
    const applied = await objects.patch(deployment('ssa', 2), undefined, undefined, 'mesh', undefined, PatchStrategy.ServerSideApply) as V1Deployment;
    assert.equal(applied.spec?.replicas, 2);
    assert.equal(applied.metadata?.generation, 1);
    assert.deepEqual(applied.metadata?.managedFields?.map((m) => `${m.manager}/${m.operation}`), ['mesh/Apply']);

    // Another manager setting a field mesh owns, to a different value, conflicts...
    const other = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'ssa', namespace: 'app' }, spec: { replicas: 5 } };
    const conflict = await expectStatus(objects.patch(other, undefined, undefined, 'hpa', undefined, PatchStrategy.ServerSideApply), 409, 'Conflict');
    assert.match(conflict.message, /^Apply failed with 1 conflict: conflict with "mesh"/);
    assert.deepEqual(conflict.details?.causes?.map((c) => c.field), ['.spec.replicas']);
    // ...unless forced, which moves ownership.
    const forced = await objects.patch(other, undefined, undefined, 'hpa', true, PatchStrategy.ServerSideApply) as V1Deployment;
    assert.equal(forced.spec?.replicas, 5);
    assert.equal(forced.metadata?.generation, 2);

    // Re-applying without replicas leaves hpa's value; dropping a label mesh applied removes it.
    const base = deployment('ssa');
    delete base.spec?.replicas;
    base.metadata = { ...base.metadata, labels: {} };
    const reapplied = await objects.patch(base, undefined, undefined, 'mesh', undefined, PatchStrategy.ServerSideApply) as V1Deployment;
    assert.equal(reapplied.spec?.replicas, 5);
    assert.equal(reapplied.metadata?.labels?.app, undefined);

    // Apply without a field manager is rejected like the real API.
    await expectStatus(objects.patch(base, undefined, undefined, undefined, undefined, PatchStrategy.ServerSideApply), 422, 'Invalid');
  });

  it('creates through server-side apply and honours dryRun on patch', async () => {
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ssa-cm', namespace: 'app' }, data: { a: '1' } };
    const dry = await objects.patch(cm, undefined, 'All', 'mesh', undefined, PatchStrategy.ServerSideApply);
    assert.equal(dry.metadata?.name, 'ssa-cm');
    await expectStatus(core.readNamespacedConfigMap({ name: 'ssa-cm', namespace: 'app' }), 404);
    await objects.patch(cm, undefined, undefined, 'mesh', undefined, PatchStrategy.ServerSideApply);
    assert.equal((await core.readNamespacedConfigMap({ name: 'ssa-cm', namespace: 'app' })).data?.a, '1');
    await core.patchNamespacedConfigMap({ name: 'ssa-cm', namespace: 'app', dryRun: 'All', body: { data: { a: '2' } } }, mergePatch);
    assert.equal((await core.readNamespacedConfigMap({ name: 'ssa-cm', namespace: 'app' })).data?.a, '1');
  });

  it('keeps status behind the status subresource and bumps generation only on spec changes', async () => {
    const created = await apps.createNamespacedDeployment({ namespace: 'app', body: { ...deployment('st'), status: { readyReplicas: 9 } } });
    assert.equal(created.status?.readyReplicas, undefined, 'status is dropped on create');
    assert.equal(created.metadata?.generation, 1);

    server.store.setStatus({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'st', namespace: 'app' }, { replicas: 1, readyReplicas: 1, observedGeneration: 1 });
    const read = await apps.readNamespacedDeployment({ name: 'st', namespace: 'app' });
    assert.equal(read.status?.readyReplicas, 1);
    assert.equal(read.metadata?.generation, 1, 'a status change does not bump generation');

    const updated = await apps.replaceNamespacedDeployment({ name: 'st', namespace: 'app', body: { ...read, spec: { ...read.spec!, replicas: 2 }, status: { readyReplicas: 0 } } });
    assert.equal(updated.metadata?.generation, 2);
    assert.equal(updated.status?.readyReplicas, 1, 'the main resource ignores status');

    const st = await apps.replaceNamespacedDeploymentStatus({ name: 'st', namespace: 'app', body: { ...updated, spec: { ...updated.spec!, replicas: 7 }, status: { readyReplicas: 2 } } });
    assert.equal(st.status?.readyReplicas, 2);
    assert.equal(st.spec?.replicas, 2, '/status ignores spec');
    const patchedStatus = await apps.patchNamespacedDeploymentStatus({ name: 'st', namespace: 'app', body: { status: { availableReplicas: 2 } } }, mergePatch);
    assert.equal(patchedStatus.status?.availableReplicas, 2);
    assert.equal(patchedStatus.status?.readyReplicas, 2);
  });

  it('serves the scale subresource', async () => {
    await apps.createNamespacedDeployment({ namespace: 'app', body: deployment('sc', 2) });
    const scale = await apps.readNamespacedDeploymentScale({ name: 'sc', namespace: 'app' });
    assert.equal(scale.kind, 'Scale');
    assert.equal(scale.spec?.replicas, 2);
    assert.equal(scale.status?.selector, 'app=sc');
    const replaced = await apps.replaceNamespacedDeploymentScale({ name: 'sc', namespace: 'app', body: { ...scale, spec: { replicas: 4 } } });
    assert.equal(replaced.spec?.replicas, 4);
    await apps.patchNamespacedDeploymentScale({ name: 'sc', namespace: 'app', body: { spec: { replicas: 6 } } }, mergePatch);
    assert.equal((await apps.readNamespacedDeployment({ name: 'sc', namespace: 'app' })).spec?.replicas, 6);
  });

  it('validates built-in objects where controllers depend on it', async () => {
    const bad = deployment('bad');
    bad.spec!.template.metadata = { labels: { app: 'other' } };
    const invalid = await expectStatus(apps.createNamespacedDeployment({ namespace: 'app', body: bad }), 422, 'Invalid');
    assert.match(invalid.message, /^Deployment.apps "bad" is invalid: spec.template.metadata.labels/);
    const svc = await core.createNamespacedService({ namespace: 'app', body: { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } } });
    assert.match(svc.spec?.clusterIP ?? '', /^10\.96\.\d+\.\d+$/);
    assert.equal(svc.spec?.type, 'ClusterIP');
    assert.equal(svc.spec?.ports?.[0].protocol, 'TCP');
    await expectStatus(core.createNamespacedService({ namespace: 'app', body: { metadata: { name: '1web' }, spec: { ports: [{ port: 80 }] } } }), 422, 'Invalid');
  });
});
