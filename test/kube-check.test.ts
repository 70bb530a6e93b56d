// mesh check --platform kubernetes [--pre] through the real CLI against the fake API server.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startCliCluster } from './support/kube-mesh.js';
import { createIssuer, createTrustAnchor } from '../src/identity/ca.js';
import { VERSION } from '../src/version.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ROOT } from './support/mesh.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const FIX = join(ROOT, 'test', 'fixtures', 'kube');

const DEPLOY = { apiVersion: 'apps/v1', kind: 'Deployment', name: 'mesh-control', namespace: 'mesh-system' };
const cluster = (opts: Parameters<typeof startCliCluster>[1] = {}) => startCliCluster('mesh-kube-check-', opts);

/** The lines of a check's output for one check: its mark and description, then its error lines. */
const line = (out: string, description: string) => out.split('\n').find((l) => l.slice(2) === description);

describe('mesh check --platform kubernetes --pre', () => {
  it('passes on a fresh cluster the user can administer', async () => {
    const c = await cluster();
    try {
      const r = await c.run(['check', '--pre']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stderr, /platform: kubernetes · context: fake/);
      for (const cat of ['kubernetes-api', 'kubernetes-version', 'pre-kubernetes-setup', 'pre-kubernetes-capability']) assert.match(r.stdout, new RegExp(`^${cat}\\n-+$`, 'm'));
      assert.match(r.stdout, /Status check results are √/);
    } finally {
      await c.close();
    }
  });

  it('fails on missing permissions and an old Kubernetes, and warns about namespaces that refuse NET_ADMIN', async () => {
    const c = await cluster({ gitVersion: 'v1.28.9', deny: [{ verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'clusterroles' }] });
    try {
      c.server.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'locked', labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } });
      const r = await c.run(['check', '--pre']);
      assert.equal(r.code, 1);
      assert.equal(line(r.stdout, 'is running the minimum Kubernetes API version (1.29, native sidecars)')?.[0], '×');
      assert.match(r.stdout, /the cluster runs v1.28.9; the mesh proxy runs as a native sidecar/);
      assert.equal(line(r.stdout, 'can create non-namespaced resources')?.[0], '×');
      assert.match(r.stdout, /cannot create ClusterRoles\n/);
      assert.equal(line(r.stdout, 'can create namespaced resources')?.[0], '√');
      assert.equal(line(r.stdout, 'namespaces allow the mesh-init container (NET_ADMIN, NET_RAW)')?.[0], '‼');
      assert.match(r.stdout, /namespace locked enforces Pod Security "restricted"/);
      assert.match(r.stdout, /Status check results are ×/);
    } finally {
      await c.close();
    }
  });
});

describe('mesh check --platform kubernetes', () => {
  let c: Awaited<ReturnType<typeof cluster>>;
  before(async () => {
    c = await cluster();
  });
  after(() => c.close());

  it('stops at the first fatal failure when mesh is not installed, in text and JSON', async () => {
    const r = await c.run(['check', '--wait', '0s']);
    assert.equal(r.code, 1);
    assert.equal(line(r.stdout, 'mesh CRDs are installed')?.[0], '×');
    assert.match(r.stdout, /missing routes.mesh.io, policies.mesh.io: run mesh install --crds\n\s+see https:\/\/mesh.dev\/checks#mesh-crds for hints/);
    assert.doesNotMatch(r.stdout, /mesh-identity/, 'nothing after a fatal failure');
    const j = await c.run(['check', '--wait', '0s', '-o', 'json']);
    assert.equal(j.code, 1);
    const report = JSON.parse(j.stdout) as { success: boolean; categories: { categoryName: string; checks: { result: string; error?: string }[] }[] };
    assert.equal(report.success, false);
    assert.deepEqual(report.categories.map((x) => x.categoryName), ['kubernetes-api', 'kubernetes-version', 'mesh-existence']);
    assert.equal(report.categories[2]!.checks[0]!.result, 'error');
  });

  it('passes on an installed mesh with ready proxies, and warns about proxies on another version', async () => {
    assert.equal((await c.run(['install', '--crds', '--apply'])).code, 0);
    const timer = setInterval(() => {
      const d = c.server.store.get(DEPLOY);
      if (d && !(d.status as { readyReplicas?: number } | undefined)?.readyReplicas) c.server.store.setStatus(DEPLOY, { replicas: 1, readyReplicas: 1, observedGeneration: d.metadata.generation ?? 1 });
    }, 20);
    try {
      const install = await c.run(['install', '--apply', '--wait', '30s']);
      assert.equal(install.code, 0, install.stderr);
    } finally {
      clearInterval(timer);
    }
    c.server.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    const pod = (name: string, version: string, ready: boolean) => c.server.store.create({
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name, namespace: 'shop', labels: { app: 'web', 'mesh.io/control-plane-ns': 'mesh-system' }, annotations: { 'mesh.io/proxy-version': version } },
      spec: { containers: [{ name: 'web', image: 'web' }], initContainers: [{ name: 'mesh-proxy', image: 'mesh', restartPolicy: 'Always' }] },
      status: { phase: 'Running', initContainerStatuses: [{ name: 'mesh-proxy', ready, restartCount: 0, image: 'mesh', imageID: '', started: true }] },
    });
    pod('web-1', VERSION, true);
    const ok = await c.run(['check', '--wait', '0s']);
    assert.equal(ok.code, 0, ok.stdout);
    assert.match(ok.stdout, /√ proxy injector webhook is configured with the CA of its serving certificate/);
    assert.match(ok.stdout, /√ issuer certificate is issued by the trust anchor/);
    assert.match(ok.stdout, /√ data plane proxies are ready/);
    assert.match(ok.stdout, /Status check results are √/);

    pod('web-old', '0.0.1', true);
    const old = await c.run(['check', '--wait', '0s']);
    assert.equal(old.code, 0, 'a warning alone does not fail the check');
    assert.equal(line(old.stdout, 'data plane proxies run the CLI\'s version')?.[0], '‼');
    assert.match(old.stdout, /shop\/web-old: proxy 0.0.1, CLI /);

    pod('web-down', VERSION, false);
    const down = await c.run(['check', '--wait', '0s']);
    assert.equal(down.code, 1);
    assert.match(down.stdout, /× data plane proxies are ready\n\s+shop\/web-down: mesh-proxy is not ready/);
    c.server.store.delete({ apiVersion: 'v1', kind: 'Pod', name: 'web-down', namespace: 'shop' });
  });

  it('fails for a Pending meshed pod and for a control plane scaled to 0 (issue 16, bug 3)', async () => {
    c.server.store.create({
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: 'web-pending', namespace: 'shop', labels: { app: 'web', 'mesh.io/control-plane-ns': 'mesh-system' }, annotations: { 'mesh.io/proxy-version': VERSION } },
      spec: { containers: [{ name: 'web', image: 'web' }], initContainers: [{ name: 'mesh-proxy', image: 'mesh', restartPolicy: 'Always' }] },
      status: { phase: 'Pending' },
    });
    const pending = await c.run(['check', '--wait', '0s']);
    assert.equal(pending.code, 1);
    assert.match(pending.stdout, /× data plane proxies are ready\n\s+shop\/web-pending: mesh-proxy is not ready/);
    c.server.store.delete({ apiVersion: 'v1', kind: 'Pod', name: 'web-pending', namespace: 'shop' });
    const d = c.server.store.get(DEPLOY)!;
    c.server.store.put({ ...d, spec: { ...(d.spec as object), replicas: 0 } });
    c.server.store.setStatus(DEPLOY, { replicas: 0, observedGeneration: (d.metadata.generation ?? 1) + 1 });
    const scaled = await c.run(['check', '--wait', '0s']);
    assert.equal(scaled.code, 1);
    assert.match(scaled.stdout, /× control plane is ready\n\s+deployment mesh-system\/mesh-control is scaled to 0/);
    c.server.store.put({ ...c.server.store.get(DEPLOY)!, spec: { ...(d.spec as object), replicas: 1 } });
    c.server.store.setStatus(DEPLOY, { replicas: 1, readyReplicas: 1 });
  });

  it("fails when mesh-control cannot read the cluster's client CA (an older install), and the printed install fixes it", async () => {
    const BINDING = { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', name: 'mesh:mesh-control:client-ca', namespace: 'kube-system' };
    const description = "mesh-control can read the cluster's client CA";
    assert.ok(c.server.store.get(BINDING), 'install --apply made the binding');
    assert.equal(line((await c.run(['check', '--wait', '0s'])).stdout, description)?.[0], '√');
    c.server.store.delete(BINDING);
    const r = await c.run(['check', '--wait', '0s']);
    assert.equal(r.code, 1);
    assert.equal(line(r.stdout, description)?.[0], '×');
    assert.match(r.stdout, /RoleBinding kube-system\/mesh:mesh-control:client-ca does not exist \(an install older than this CLI\): tap refuses users who authenticate with a client certificate \(401\)/);
    // The hint's command, run as printed (the harness adds only the kubeconfig; npx when the CLI runs from a checkout), puts the binding back.
    const fix = (/run '(?:npx )?mesh (.+?)'/.exec(r.stdout) ?? assert.fail(r.stdout))[1]!.split(' ');
    const timer = setInterval(() => c.server.store.setStatus(DEPLOY, { replicas: 1, readyReplicas: 1, observedGeneration: c.server.store.get(DEPLOY)?.metadata.generation ?? 1 }), 20);
    try {
      const again = await c.run(fix);
      assert.equal(again.code, 0, again.stderr);
    } finally {
      clearInterval(timer);
    }
    const ok = await c.run(['check', '--wait', '0s']);
    assert.equal(line(ok.stdout, description)?.[0], '√', ok.stdout);
  });

  it('re-rendering install keeps the installed identity, refuses files of another anchor, and check flags proxies that hold another anchor (issue 16, bug 4)', async () => {
    const installed = (kind: string, name: string) => c.server.store.get({ apiVersion: 'v1', kind, name, namespace: 'mesh-system' }) as unknown as { data: Record<string, string> };
    const hook = () => c.server.store.get({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', name: 'mesh-proxy-injector' }) as unknown as Obj;
    const render = await c.run(['install']);
    assert.equal(render.code, 0, render.stderr);
    const docs = parseAllDocuments(render.stdout).map((d) => d.toJS() as Obj);
    const doc = (kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name)!;
    assert.equal(doc('ConfigMap', 'mesh-identity-trust-roots').data['ca-bundle.crt'], installed('ConfigMap', 'mesh-identity-trust-roots').data['ca-bundle.crt']);
    assert.deepEqual(doc('Secret', 'mesh-identity-issuer').data, installed('Secret', 'mesh-identity-issuer').data);
    assert.deepEqual(doc('Secret', 'mesh-webhook-tls').data, installed('Secret', 'mesh-webhook-tls').data);
    assert.equal(doc('MutatingWebhookConfiguration', 'mesh-proxy-injector').webhooks[0].clientConfig.caBundle, hook().webhooks[0].clientConfig.caBundle);

    const other = await c.run(['install', '--identity-trust-anchors-file', join(FIX, 'anchor.crt'), '--identity-issuer-certificate-file', join(FIX, 'issuer.crt'), '--identity-issuer-key-file', join(FIX, 'issuer.key')]);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /a mesh with another trust anchor is installed on fake/);
    assert.equal(other.stdout, '');

    const pod = (name: string, anchors: string) => c.server.store.create({
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name, namespace: 'shop', labels: { app: 'web', 'mesh.io/control-plane-ns': 'mesh-system' }, annotations: { 'mesh.io/proxy-version': VERSION } },
      spec: { containers: [{ name: 'web', image: 'web' }], initContainers: [{ name: 'mesh-proxy', image: 'mesh', restartPolicy: 'Always', env: [{ name: 'MESH_TRUST_ANCHORS', value: anchors }] }] },
      status: { phase: 'Running', initContainerStatuses: [{ name: 'mesh-proxy', ready: true, restartCount: 0, image: 'mesh', imageID: '', started: true }] },
    });
    pod('web-same', installed('ConfigMap', 'mesh-identity-trust-roots').data['ca-bundle.crt']);
    const same = await c.run(['check', '--wait', '0s']);
    assert.equal(same.code, 0, same.stdout);
    assert.equal(line(same.stdout, 'data plane proxies trust the installed issuer')?.[0], '√');
    pod('web-stale', readFileSync(join(FIX, 'other-anchor.crt'), 'utf8'));
    const stale = await c.run(['check', '--wait', '0s']);
    assert.equal(stale.code, 1);
    assert.match(stale.stdout, /× data plane proxies trust the installed issuer\n\s+shop\/web-stale: its proxy holds other trust anchors than the installed ones/);
    assert.doesNotMatch(stale.stdout, /shop\/web-same: its proxy/);
    for (const name of ['web-same', 'web-stale']) c.server.store.delete({ apiVersion: 'v1', kind: 'Pod', name, namespace: 'shop' });
  });

  it('fails once the issuer has expired, unlike Linkerd, which exits 0 on warnings', async () => {
    const anchor = await createTrustAnchor('cluster.local');
    const issuer = await createIssuer('cluster.local', anchor, 600_000, new Date(Date.now() - 3600_000));
    c.server.store.patch({ apiVersion: 'v1', kind: 'ConfigMap', name: 'mesh-identity-trust-roots', namespace: 'mesh-system' }, { data: { 'ca-bundle.crt': anchor.certPem } });
    c.server.store.patch({ apiVersion: 'v1', kind: 'Secret', name: 'mesh-identity-issuer', namespace: 'mesh-system' },
      { data: { 'tls.crt': Buffer.from(issuer.certPem).toString('base64'), 'tls.key': Buffer.from(issuer.keyPem).toString('base64') } });
    const r = await c.run(['check', '--wait', '0s']);
    assert.equal(r.code, 1);
    assert.equal(line(r.stdout, 'issuer certificate is within its validity period')?.[0], '×');
    assert.match(r.stdout, /the issuer certificate expired on /);
    assert.equal(line(r.stdout, 'trust anchors are within their validity period')?.[0], '√');
  });
});
