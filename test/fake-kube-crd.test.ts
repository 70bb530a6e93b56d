// The fake Kubernetes API server through @kubernetes/client-node: CRDs, custom resources and their discovery.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ApiextensionsV1Api, ApisApi, CoreV1Api, CustomObjectsApi, KubernetesObjectApi, PatchStrategy, setHeaderOptions,
  type KubeConfig, type KubernetesObject, type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { startFakeApiServer, type FakeApiServer } from './support/kube/fake-api-server.js';
import { expectStatus, kubeConfigFor, RecordedWatch } from './support/kube/testing.js';

const GROUP = 'mesh.example.io';
const ts = { group: GROUP, version: 'v1alpha1', plural: 'trafficsplits' };

const crd: V1CustomResourceDefinition = {
  apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition',
  metadata: { name: `trafficsplits.${GROUP}` },
  spec: {
    group: GROUP, scope: 'Namespaced',
    names: { plural: 'trafficsplits', singular: 'trafficsplit', kind: 'TrafficSplit', shortNames: ['ts'] },
    versions: [{
      name: 'v1alpha1', served: true, storage: true, subresources: { status: {} },
      schema: {
        openAPIV3Schema: {
          type: 'object',
          properties: {
            spec: {
              type: 'object', required: ['service'],
              properties: { service: { type: 'string' }, weight: { type: 'integer', minimum: 0, maximum: 100 } },
            },
            status: { type: 'object', x_kubernetes_preserve_unknown_fields: true },
          },
        },
      },
    }],
  },
};

interface TrafficSplit extends KubernetesObject {
  spec?: { service?: string; weight?: number; extra?: string };
  status?: { observed?: number };
}

describe('fake kube API server: CRDs and custom resources', () => {
  let server: FakeApiServer;
  let kc: KubeConfig;
  let ext: ApiextensionsV1Api;
  let custom: CustomObjectsApi;

  before(async () => {
    server = await startFakeApiServer();
    kc = kubeConfigFor(server);
    ext = kc.makeApiClient(ApiextensionsV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'app' } } });
  });
  after(() => server.close());

  it('serves nothing for a group before its CRD exists', async () => {
    await expectStatus(custom.listNamespacedCustomObject({ ...ts, namespace: 'app' }), 404, 'NotFound');
    const groups = await kc.makeApiClient(ApisApi).getAPIVersions();
    assert.ok(!groups.groups.some((g) => g.name === GROUP));
  });

  it('rejects an invalid CRD with 422', async () => {
    const bad = structuredClone(crd);
    bad.metadata = { name: 'wrong.name.io' };
    const status = await expectStatus(ext.createCustomResourceDefinition({ body: bad }), 422, 'Invalid');
    assert.match(status.message, /must be spec.names.plural\+"."\+spec.group/);
  });

  it('registers a CRD: established, discoverable, usable through KubernetesObjectApi', async () => {
    const created = await ext.createCustomResourceDefinition({ body: crd });
    assert.ok(created.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True'));
    assert.equal(created.status?.acceptedNames?.kind, 'TrafficSplit');
    const groups = await kc.makeApiClient(ApisApi).getAPIVersions();
    assert.equal(groups.groups.find((g) => g.name === GROUP)?.preferredVersion?.version, 'v1alpha1');
    const resources = await custom.getAPIResources({ group: GROUP, version: 'v1alpha1' });
    assert.deepEqual(resources.resources.map((r) => r.name), ['trafficsplits', 'trafficsplits/status']);

    // KubernetesObjectApi resolves the plural through discovery, as against a real cluster.
    const objects = KubernetesObjectApi.makeApiClient(kc);
    const made = await objects.create<TrafficSplit>({ apiVersion: `${GROUP}/v1alpha1`, kind: 'TrafficSplit', metadata: { name: 'via-objects', namespace: 'app' }, spec: { service: 'web' } });
    assert.equal(made.metadata?.generation, 1);
    const listed = await objects.list<TrafficSplit>(`${GROUP}/v1alpha1`, 'TrafficSplit', 'app');
    assert.deepEqual(listed.items.map((i) => i.metadata?.name), ['via-objects']);
    assert.equal(listed.items[0].kind, 'TrafficSplit', 'custom resource list items keep kind');
  });

  it('does CRUD on custom objects with schema pruning and validation', async () => {
    const body: TrafficSplit = {
      apiVersion: `${GROUP}/v1alpha1`, kind: 'TrafficSplit',
      metadata: { name: 'split', labels: { mesh: 'on' } }, spec: { service: 'web', weight: 10, extra: 'dropped' },
    };
    const created = await custom.createNamespacedCustomObject({ ...ts, namespace: 'app', body }) as TrafficSplit;
    assert.deepEqual(created.spec, { service: 'web', weight: 10 }, 'unknown fields are pruned');
    await expectStatus(custom.createNamespacedCustomObject({ ...ts, namespace: 'app', body }), 409, 'AlreadyExists');

    const invalid = await expectStatus(custom.createNamespacedCustomObject({ ...ts, namespace: 'app', body: { ...body, metadata: { name: 'bad' }, spec: { weight: 200 } } }), 422, 'Invalid');
    assert.deepEqual(invalid.details?.causes?.map((c) => c.field).sort(), ['spec.service', 'spec.weight']);

    const got = await custom.getNamespacedCustomObject({ ...ts, namespace: 'app', name: 'split' }) as TrafficSplit;
    assert.equal(got.metadata?.uid, created.metadata?.uid);
    const list = await custom.listNamespacedCustomObject({ ...ts, namespace: 'app', labelSelector: 'mesh=on' }) as { items: TrafficSplit[] };
    assert.deepEqual(list.items.map((i) => i.metadata?.name), ['split']);

    const merged = await custom.patchNamespacedCustomObject({ ...ts, namespace: 'app', name: 'split', body: { spec: { weight: 50 } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch)) as TrafficSplit;
    assert.equal(merged.spec?.weight, 50);
    assert.equal(merged.metadata?.generation, 2);
    const smp = await expectStatus(custom.patchNamespacedCustomObject({ ...ts, namespace: 'app', name: 'split', body: { spec: { weight: 1 } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch)), 415, 'UnsupportedMediaType');
    assert.match(smp.message, /accepted media types include/);

    const withStatus = await custom.replaceNamespacedCustomObjectStatus({ ...ts, namespace: 'app', name: 'split', body: { ...merged, status: { observed: 2 } } }) as TrafficSplit;
    assert.deepEqual(withStatus.status, { observed: 2 });
    assert.equal(withStatus.metadata?.generation, 2, 'status writes do not bump generation');

    await custom.deleteNamespacedCustomObject({ ...ts, namespace: 'app', name: 'split' });
    await expectStatus(custom.getNamespacedCustomObject({ ...ts, namespace: 'app', name: 'split' }), 404, 'NotFound');
  });

  it('serves cluster-scoped custom resources', async () => {
    const meshes = structuredClone(crd);
    meshes.metadata = { name: `meshes.${GROUP}` };
    meshes.spec.scope = 'Cluster';
    meshes.spec.names = { plural: 'meshes', singular: 'mesh', kind: 'Mesh' };
    meshes.spec.versions[0].schema = { openAPIV3Schema: { type: 'object', x_kubernetes_preserve_unknown_fields: true } };
    await ext.createCustomResourceDefinition({ body: meshes });
    const m = { group: GROUP, version: 'v1alpha1', plural: 'meshes' };
    await custom.createClusterCustomObject({ ...m, body: { apiVersion: `${GROUP}/v1alpha1`, kind: 'Mesh', metadata: { name: 'default' }, spec: { anything: true } } });
    const got = await custom.getClusterCustomObject({ ...m, name: 'default' }) as { metadata: { namespace?: string }; spec: unknown };
    assert.equal(got.metadata.namespace, undefined);
    assert.deepEqual(got.spec, { anything: true });
    await expectStatus(custom.createNamespacedCustomObject({ ...m, namespace: 'app', body: { metadata: { name: 'x' } } }), 404);
  });

  it('removes custom resources, their watches and their discovery when the CRD is deleted', async () => {
    await custom.createNamespacedCustomObject({ ...ts, namespace: 'app', body: { apiVersion: `${GROUP}/v1alpha1`, kind: 'TrafficSplit', metadata: { name: 'last' }, spec: { service: 'x' } } });
    const w = await RecordedWatch.start(kc, `/apis/${GROUP}/v1alpha1/namespaces/app/trafficsplits`);
    try {
      await w.waitForEvents(2);
      await ext.deleteCustomResourceDefinition({ name: `trafficsplits.${GROUP}` });
      assert.equal(await w.waitForDone(), null);
      assert.deepEqual(w.events.map((e) => `${e.type} ${e.name}`), ['ADDED last', 'ADDED via-objects', 'DELETED last', 'DELETED via-objects']);
    } finally {
      w.stop();
    }
    await expectStatus(custom.getNamespacedCustomObject({ ...ts, namespace: 'app', name: 'last' }), 404);
    const resources = await custom.getAPIResources({ group: GROUP, version: 'v1alpha1' });
    assert.deepEqual(resources.resources.map((r) => r.name), ['meshes', 'meshes/status'], 'only the remaining CRD is discoverable');
  });
});
