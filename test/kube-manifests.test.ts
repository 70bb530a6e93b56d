// The Kubernetes install manifests as a pure rendering: golden files, the Kubernetes OpenAPI schema for every
// object, identity checks, and the CRD schemas against the route model through the fake API server.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { X509Certificate } from 'node:crypto';
import { parseAllDocuments } from 'yaml';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { POLICY_SCHEMA, renderCrds, ROUTE_SCHEMA } from '../src/platform/kubernetes/crds.js';
import { renderControlPlane, type InstallValues } from '../src/platform/kubernetes/manifests.js';
import { generateWebhookCert, validateIdentity } from '../src/platform/kubernetes/identity.js';
import { toYaml } from '../src/platform/kubernetes/yaml.js';
import { KubeClient } from '../src/platform/kubernetes/client.js';
import { createIssuer, createTrustAnchor } from '../src/identity/ca.js';
import { validateRoute } from '../src/model/route.js';
import { validatePolicy } from '../src/model/policy.js';
import { startFakeApiServer, type FakeApiServer } from './support/kube/fake-api-server.js';
import { expectStatus, kubeConfigFor } from './support/kube/testing.js';
import { validateK8s } from './support/k8s-openapi.js';
import { fixture, golden } from './support/golden.js';

function fixedValues(): InstallValues {
  return {
    version: '0.0.0-test',
    image: 'ghcr.io/mesh/mesh:0.0.0-test',
    trustDomain: 'cluster.local',
    certLifetime: '24h',
    identity: { trustAnchorsPem: fixture('kube', 'anchor.crt'), issuerCertPem: fixture('kube', 'issuer.crt'), issuerKeyPem: fixture('kube', 'issuer.key') },
    webhook: { caPem: fixture('kube', 'webhook-ca.crt'), certPem: fixture('kube', 'webhook.crt'), keyPem: fixture('kube', 'webhook.key') },
  };
}

describe('kubernetes install manifests', () => {
  it('renders the CRDs as in the golden file', () => {
    golden('kube-install-crds.yaml', toYaml(renderCrds('0.0.0-test')));
  });

  it('renders the control plane as in the golden file, byte for byte the same each time', () => {
    const yaml = toYaml(renderControlPlane(fixedValues()));
    assert.equal(toYaml(renderControlPlane(fixedValues())), yaml);
    golden('kube-install-control-plane.yaml', yaml);
  });

  it('renders multi-document YAML that parses back to the same objects, in apply order', () => {
    const objects = renderControlPlane(fixedValues());
    const docs = parseAllDocuments(toYaml(objects));
    assert.ok(Array.isArray(docs));
    assert.deepEqual(docs.map((d) => d.toJS()), JSON.parse(JSON.stringify(objects)));
    assert.equal(objects[0]!.kind, 'Namespace');
    assert.equal(objects.at(-1)!.kind, 'MutatingWebhookConfiguration');
  });

  it('renders only objects valid against the Kubernetes OpenAPI schema', () => {
    for (const obj of [...renderCrds('0.0.0-test'), ...renderControlPlane(fixedValues())]) {
      assert.doesNotThrow(() => validateK8s(obj), `${obj.kind as string} ${(obj.metadata as { name: string }).name}`);
    }
  });

  it('labels every object as mesh\'s, and only namespaced ones into mesh-system (but the client CA reader binding in kube-system)', () => {
    for (const obj of [...renderCrds('0.0.0-test'), ...renderControlPlane(fixedValues())]) {
      const md = obj.metadata as { name: string; labels: Record<string, string>; namespace?: string };
      assert.equal(md.labels['app.kubernetes.io/part-of'], 'mesh');
      assert.equal(md.labels['app.kubernetes.io/managed-by'], 'mesh');
      if (md.namespace) assert.equal(md.namespace, obj.kind === 'RoleBinding' ? 'kube-system' : 'mesh-system', `${obj.kind}/${md.name}`);
    }
    const binding = renderControlPlane(fixedValues()).find((o) => o.kind === 'RoleBinding') as unknown as { roleRef: { kind: string; name: string }; subjects: { name: string; namespace: string }[] };
    assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'extension-apiserver-authentication-reader' });
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'mesh-control', namespace: 'mesh-system' }]);
  });

  it('gives the RBAC the brief asks for, and runs this package as the control plane', () => {
    const objects = renderControlPlane(fixedValues());
    const role = objects.find((o) => o.kind === 'ClusterRole') as unknown as { rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] };
    const can = (group: string, resource: string, verb: string) => role.rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));
    for (const r of ['pods', 'services', 'namespaces']) assert.ok(can('', r, 'watch'), r);
    assert.ok(can('discovery.k8s.io', 'endpointslices', 'list'));
    assert.ok(can('mesh.io', 'routes', 'watch') && can('mesh.io', 'policies', 'watch'));
    assert.ok(can('authentication.k8s.io', 'tokenreviews', 'create'));
    assert.ok(!can('', 'secrets', 'list'), 'no cluster-wide secret access');
    const deploy = objects.find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { spec: { containers: { image: string; args: string[] }[] } } } };
    const c = deploy.spec.template.spec.containers[0]!;
    assert.equal(c.image, 'ghcr.io/mesh/mesh:0.0.0-test');
    assert.deepEqual(c.args.slice(0, 3), ['control', '--platform', 'kubernetes']);
  });

  it('bundles the webhook CA that signed the serving certificate, for the Service names', async () => {
    const w = await generateWebhookCert('cluster.local');
    const ca = new X509Certificate(w.caPem);
    const cert = new X509Certificate(w.certPem);
    assert.ok(cert.verify(ca.publicKey));
    assert.equal(cert.checkHost('mesh-control.mesh-system.svc'), 'mesh-control.mesh-system.svc');
    const hook = renderControlPlane({ ...fixedValues(), webhook: w }).find((o) => o.kind === 'MutatingWebhookConfiguration') as unknown as { webhooks: { clientConfig: { caBundle: string } }[] };
    assert.equal(Buffer.from(hook.webhooks[0]!.clientConfig.caBundle, 'base64').toString(), w.caPem);
  });
});

describe('kubernetes install identity', () => {
  it('accepts an issuer signed by the trust anchor', () => {
    assert.doesNotThrow(() => validateIdentity(fixedValues().identity));
  });

  it('refuses an issuer another anchor signed, a non-CA issuer, a key of another certificate, an expired issuer', async () => {
    const v = fixedValues().identity;
    assert.throws(() => validateIdentity({ ...v, trustAnchorsPem: fixture('kube', 'other-anchor.crt') }), /not signed by the trust anchor/);
    assert.throws(() => validateIdentity({ ...v, issuerCertPem: fixture('kube', 'webhook.crt') }), /not a CA/);
    assert.throws(() => validateIdentity({ ...v, issuerKeyPem: fixture('kube', 'webhook.key') }), /does not belong to the issuer/);
    assert.throws(() => validateIdentity({ ...v, issuerCertPem: 'garbage' }), /not a PEM certificate/);
    const anchor = await createTrustAnchor('cluster.local');
    const expired = await createIssuer('cluster.local', anchor, 600_000, new Date(Date.now() - 3600_000));
    assert.throws(() => validateIdentity({ trustAnchorsPem: anchor.certPem, issuerCertPem: expired.certPem, issuerKeyPem: expired.keyPem }), /expired/);
  });
});

describe('kubernetes CRDs against the route model', () => {
  let server: FakeApiServer;
  let kc: KubeConfig;
  const routes = { group: 'mesh.io', version: 'v1alpha1', plural: 'routes', namespace: 'app' };
  const full = {
    apiVersion: 'mesh.io/v1alpha1', kind: 'Route', metadata: { name: 'reviews', namespace: 'app' },
    spec: {
      rules: [
        {
          matches: [{ headers: [{ name: 'end-user', exact: 'jason' }], pathPrefix: '/reviews', method: 'GET' }, { headers: [{ name: 'x-canary', regex: '^yes$' }] }],
          backends: [{ version: 'v3', weight: 1 }], timeout: '500ms', retries: { attempts: 2, retryOn: ['connect-failure', '5xx'] },
          fault: { delay: { duration: '2s', percent: 10 }, abort: { status: 503, percent: 1.5 } },
        },
        { backends: [{ version: 'v1', weight: 80 }, { version: 'v2', weight: 20 }] },
      ],
      retryBudget: { retryRatio: 0.2, minRetriesPerSecond: 10 },
      failureAccrual: { consecutiveFailures: 7 },
    },
  };

  before(async () => {
    server = await startFakeApiServer();
    kc = kubeConfigFor(server);
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'app' } } });
    // Through KubeClient.apply, as mesh install --crds --apply sends them (wire names such as enum intact).
    const kube = await KubeClient.fromConfig(kc);
    for (const crd of renderCrds('0.0.0-test')) await kube.apply(crd as never);
    const stored = await kc.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({ name: 'policies.mesh.io' });
    assert.ok(stored.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True'));
  });
  after(() => server.close());

  it('stores a route using every field of the model without pruning any', async () => {
    assert.deepEqual(validateRoute(full).errors, [], 'the sample is a valid route');
    const custom = kc.makeApiClient(CustomObjectsApi);
    await custom.createNamespacedCustomObject({ ...routes, body: full });
    const got = await custom.getNamespacedCustomObject({ ...routes, name: 'reviews' }) as typeof full;
    assert.deepEqual(got.spec, full.spec);
    assert.deepEqual(validateRoute({ ...got, metadata: { name: got.metadata.name, namespace: got.metadata.namespace } }).errors, []);
  });

  it('rejects at apply time what the model rejects by shape', async () => {
    const custom = kc.makeApiClient(CustomObjectsApi);
    const bad = structuredClone(full);
    bad.metadata.name = 'bad';
    (bad.spec.rules[1]!.backends[0] as { weight: number }).weight = -1;
    (bad.spec.rules[0]!.retries as { attempts: number }).attempts = 11;
    bad.spec.rules[0]!.timeout = 'soon';
    const status = await expectStatus(custom.createNamespacedCustomObject({ ...routes, body: bad }), 422, 'Invalid');
    const fields = status.details?.causes?.map((c) => c.field).sort();
    assert.deepEqual(fields, ['spec.rules[0].retries.attempts', 'spec.rules[0].timeout', 'spec.rules[1].backends[0].weight']);
    assert.ok(validateRoute(bad).errors.length >= 3, 'the model rejects it too');
  });

  it('stores a policy using every field of the model, and rejects a bad default', async () => {
    const custom = kc.makeApiClient(CustomObjectsApi);
    const policies = { ...routes, plural: 'policies' };
    const policy = {
      apiVersion: 'mesh.io/v1alpha1', kind: 'Policy', metadata: { name: 'default', namespace: 'app' },
      spec: { default: 'deny', egress: 'deny', rules: [{ from: 'web', to: 'reviews', port: 9080, pathPrefix: '/api' }, { from: 'spiffe://cluster.local/ns/ops/sa/probe', to: '*' }] },
    };
    assert.deepEqual(validatePolicy(policy).errors, []);
    await custom.createNamespacedCustomObject({ ...policies, body: policy });
    const got = await custom.getNamespacedCustomObject({ ...policies, name: 'default' }) as typeof policy;
    assert.deepEqual(got.spec, policy.spec);
    const bad = { ...policy, metadata: { name: 'bad' }, spec: { default: 'maybe', rules: [{ from: 'web', to: 'Not_A_Name' }] } };
    const status = await expectStatus(custom.createNamespacedCustomObject({ ...policies, body: bad }), 422, 'Invalid');
    assert.deepEqual(status.details?.causes?.map((c) => c.field).sort(), ['spec.default', 'spec.rules[0].to']);
  });

  it('keeps the schema\'s rule fields in step with the model\'s', () => {
    const spec = (ROUTE_SCHEMA.properties as Record<string, { properties: Record<string, { items?: { properties: object } }> }>).spec!;
    assert.deepEqual(Object.keys(spec.properties).sort(), ['failureAccrual', 'retryBudget', 'rules']);
    assert.deepEqual(Object.keys(spec.properties.rules!.items!.properties).sort(), ['backends', 'fault', 'matches', 'retries', 'timeout']);
    const pspec = (POLICY_SCHEMA.properties as typeof ROUTE_SCHEMA.properties & Record<string, { properties: Record<string, { items?: { properties: object } }> }>).spec!;
    assert.deepEqual(Object.keys(pspec.properties).sort(), ['default', 'egress', 'rules']);
    assert.deepEqual(Object.keys(pspec.properties.rules!.items!.properties).sort(), ['from', 'pathPrefix', 'port', 'to']);
  });
});
