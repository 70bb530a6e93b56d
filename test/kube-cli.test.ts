// The real mesh CLI against the fake Kubernetes API server: target selection, install --crds / install --apply,
// refusals, idempotence, inject from every kind of input, and uninstall that leaves the user's objects alone.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { parseAllDocuments } from 'yaml';
import { startFakeApiServer, type FakeApiServer } from './support/kube/fake-api-server.js';
import { mesh, ROOT, type CliResult } from './support/mesh.js';
import { validateK8s } from './support/k8s-openapi.js';
import { fixture } from './support/golden.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const FIX = join(ROOT, 'test', 'fixtures', 'kube');
const DEPLOY = { apiVersion: 'apps/v1', kind: 'Deployment', name: 'mesh-control', namespace: 'mesh-system' };

const docs = (yaml: string): Obj[] => {
  const all = parseAllDocuments(yaml);
  assert.ok(Array.isArray(all));
  return all.map((d) => d.toJS() as Obj).filter(Boolean);
};

/** A scratch HOME and no KUBECONFIG: only what a test passes selects the cluster. */
function cleanEnv(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { HOME: home, KUBECONFIG: '', MESH_PLATFORM: '', ...extra };
}

/** Marks the control-plane Deployment ready as soon as it exists (the fake has no controllers). */
function readyWhenCreated(server: FakeApiServer, timeoutMs = 30_000): { stop(): void } {
  const deadline = Date.now() + timeoutMs;
  const timer = setInterval(() => {
    const d = server.store.get(DEPLOY);
    if (d && !(d.status as Obj | undefined)?.readyReplicas) {
      server.store.setStatus(DEPLOY, { replicas: 1, readyReplicas: 1, updatedReplicas: 1, availableReplicas: 1, observedGeneration: d.metadata.generation ?? 1 });
    }
    if (Date.now() > deadline) clearInterval(timer);
  }, 20);
  return { stop: () => clearInterval(timer) };
}

describe('mesh on kubernetes: the CLI against a fake API server', () => {
  let server: FakeApiServer;
  let dir: string;
  let home: string;
  let kubeconfig: string;
  const k = (args: string[], extra: NodeJS.ProcessEnv = {}, stdin?: string): Promise<CliResult> =>
    mesh(['--platform', 'kubernetes', '--kubeconfig', kubeconfig, ...args], { env: cleanEnv(home, extra), timeoutMs: 60_000, stdin });

  before(async () => {
    server = await startFakeApiServer();
    dir = mkdtempSync(join(tmpdir(), 'mesh-kube-'));
    home = join(dir, 'home');
    mkdirSync(home);
    kubeconfig = server.writeKubeconfig(dir);
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('target selection', () => {
    it('stays on the local platform unless told: kubernetes options then say so', async () => {
      const r = await mesh(['install', '--crds'], { env: cleanEnv(home, { KUBECONFIG: kubeconfig }) });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /--crds is for the kubernetes platform — add --platform kubernetes/);
    });

    it('names the platform and context in the banner, from --kubeconfig', async () => {
      const r = await k(['install', '--crds']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /^platform: kubernetes · context: fake$/m);
    });

    it('finds the cluster through KUBECONFIG (merged, like kubectl) and --context', async () => {
      const other = await startFakeApiServer({ contextName: 'other' });
      try {
        const otherDir = join(dir, 'other');
        mkdirSync(otherDir);
        const paths = `${kubeconfig}:${other.writeKubeconfig(otherDir)}`;
        const first = await mesh(['--platform', 'kubernetes', 'install', '--crds', '--apply'], { env: cleanEnv(home, { KUBECONFIG: paths }) });
        assert.equal(first.code, 0, first.stderr);
        assert.match(first.stderr, /context: fake/, 'the first file\'s current-context wins');
        const second = await mesh(['--platform', 'kubernetes', '--context', 'other', 'install', '--crds', '--apply'], { env: cleanEnv(home, { KUBECONFIG: paths }) });
        assert.equal(second.code, 0, second.stderr);
        assert.match(second.stderr, /context: other/);
        assert.ok(other.store.get({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name: 'routes.mesh.io' }), 'applied to the other cluster');
      } finally {
        await other.close();
      }
    });

    it('reads ~/.kube/config, and MESH_PLATFORM=kubernetes picks the platform', async () => {
      const h = join(dir, 'home2');
      mkdirSync(join(h, '.kube'), { recursive: true });
      copyFileSync(kubeconfig, join(h, '.kube', 'config'));
      const r = await mesh(['install', '--crds', '--apply'], { env: cleanEnv(h, { MESH_PLATFORM: 'kubernetes' }) });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /platform: kubernetes · context: fake/);
    });

    it('uses the pod\'s ServiceAccount when in a cluster and nothing else is configured', async () => {
      const root = join(dir, 'pod');
      const sa = join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
      mkdirSync(sa, { recursive: true });
      writeFileSync(join(sa, 'token'), server.token);
      writeFileSync(join(sa, 'ca.crt'), server.caPem!);
      writeFileSync(join(sa, 'namespace'), 'mesh-system');
      const port = new URL(server.url).port;
      const r = await mesh(['--platform', 'kubernetes', 'install', '--crds', '--apply'],
        { env: cleanEnv(home, { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port, MESH_INCLUSTER_ROOT: root }) });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /platform: kubernetes · context: in-cluster/);
      const viaFile = await mesh(['--platform', 'kubernetes', '--kubeconfig', kubeconfig, 'install', '--crds', '--apply'],
        { env: cleanEnv(home, { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port, MESH_INCLUSTER_ROOT: root }) });
      assert.match(viaFile.stderr, /context: fake/, 'a kubeconfig wins over in-cluster, as with kubectl');
    });

    it('says what is wrong with the target in one line', async () => {
      const noContext = await k(['--context', 'nope', 'install', '--crds', '--apply']);
      assert.equal(noContext.code, 1);
      assert.match(noContext.stderr, /error: context 'nope' is not in the kubeconfig — known contexts: fake/);
      const none = await mesh(['--platform', 'kubernetes', 'install', '--apply'], { env: cleanEnv(home) });
      assert.match(none.stderr, /error: no Kubernetes cluster configured .* — pass --kubeconfig <file>, set KUBECONFIG/);
      const missing = await mesh(['--platform', 'kubernetes', '--kubeconfig', join(dir, 'nope'), 'install', '--apply'], { env: cleanEnv(home) });
      assert.match(missing.stderr, /error: kubeconfig .*nope does not exist/);
      const down = join(dir, 'down.yaml');
      writeFileSync(down, server.kubeconfigYaml.replace(/server: .*/, 'server: https://127.0.0.1:1'));
      const refused = await mesh(['--platform', 'kubernetes', '--kubeconfig', down, 'install', '--apply'], { env: cleanEnv(home) });
      assert.match(refused.stderr, /error: cannot reach the Kubernetes API at https:\/\/127.0.0.1:1 \(context fake\)/);
      assert.doesNotMatch(refused.stderr, /at .*\.js:\d+/, 'no stack trace');
      // Rendering (no --apply) only looks for an installed identity to keep: an unreachable cluster is said, and it renders.
      const render = await mesh(['--platform', 'kubernetes', '--kubeconfig', down, 'install'], { env: cleanEnv(home) });
      assert.equal(render.code, 0, render.stderr);
      assert.match(render.stderr, /‼ cannot reach the Kubernetes API at https:\/\/127.0.0.1:1 \(context fake\): rendering with a new identity/);
      assert.match(render.stdout, /kind: Deployment/);
    });
  });

  describe('install', () => {
    it('renders the control plane for kubectl apply -f -, valid against the Kubernetes schema, with the given identity', async () => {
      const r = await k(['install', '--identity-trust-anchors-file', join(FIX, 'anchor.crt'), '--identity-issuer-certificate-file', join(FIX, 'issuer.crt'),
        '--identity-issuer-key-file', join(FIX, 'issuer.key'), '--image', 'registry.local/mesh:dev']);
      assert.equal(r.code, 0, r.stderr);
      const objs = docs(r.stdout);
      assert.deepEqual(objs.map((o) => o.kind), ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRole', 'ClusterRoleBinding', 'RoleBinding', 'ConfigMap', 'ConfigMap', 'Secret', 'Secret', 'Deployment', 'Service', 'MutatingWebhookConfiguration']);
      for (const o of objs) validateK8s(o);
      assert.equal(objs.find((o) => o.metadata.name === 'mesh-identity-trust-roots')!.data['ca-bundle.crt'], fixture('kube', 'anchor.crt'));
      assert.equal(objs.find((o) => o.kind === 'Deployment')!.spec.template.spec.containers[0].image, 'registry.local/mesh:dev');
      assert.equal(server.store.get({ apiVersion: 'v1', kind: 'Namespace', name: 'mesh-system' }), undefined, 'rendering changes nothing');
    });

    it('refuses an issuer the trust anchor did not sign, and a partial set of identity files', async () => {
      const wrong = await k(['install', '--identity-trust-anchors-file', join(FIX, 'other-anchor.crt'), '--identity-issuer-certificate-file', join(FIX, 'issuer.crt'),
        '--identity-issuer-key-file', join(FIX, 'issuer.key')]);
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /error: the issuer certificate is not signed by the trust anchor/);
      const partial = await k(['install', '--identity-trust-anchors-file', join(FIX, 'anchor.crt')]);
      assert.match(partial.stderr, /pass all of --identity-trust-anchors-file, --identity-issuer-certificate-file and --identity-issuer-key-file, or none/);
    });

    it('refuses to apply without the CRDs', async () => {
      const bare = await startFakeApiServer();
      try {
        const r = await mesh(['--platform', 'kubernetes', '--kubeconfig', bare.writeKubeconfig(mkdtempSync(join(dir, 'bare-'))), 'install', '--apply'], { env: cleanEnv(home) });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /error: the mesh CRDs are not installed \(routes.mesh.io is missing\) — run mesh install --crds first/);
        assert.equal(bare.store.get({ apiVersion: 'v1', kind: 'Namespace', name: 'mesh-system' }), undefined);
      } finally {
        await bare.close();
      }
    });

    it('applies the control plane and waits until its Deployment is ready', async () => {
      const ready = readyWhenCreated(server);
      try {
        const r = await k(['install', '--apply', '--wait', '30s']);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /√ Applied 13 objects \(13 changed\)/);
        assert.match(r.stderr, /√ Control plane is ready/);
        assert.match(r.stdout, /mesh is installed on fake/);
      } finally {
        ready.stop();
      }
      const ns = server.store.get({ apiVersion: 'v1', kind: 'Namespace', name: 'mesh-system' })!;
      assert.equal(ns.metadata.labels?.['app.kubernetes.io/part-of'], 'mesh');
      const d = server.store.get(DEPLOY)!;
      assert.deepEqual(d.metadata.managedFields?.map((m) => `${m.manager}/${m.operation}`).filter((m) => m.startsWith('mesh/')), ['mesh/Apply']);
      // The issuer in the Secret is signed by the anchor in the ConfigMap.
      const roots = server.store.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'mesh-identity-trust-roots', namespace: 'mesh-system' })!;
      const issuer = server.store.get({ apiVersion: 'v1', kind: 'Secret', name: 'mesh-identity-issuer', namespace: 'mesh-system' })!;
      const anchor = new X509Certificate((roots.data as Obj)['ca-bundle.crt']);
      const cert = new X509Certificate(Buffer.from((issuer.data as Obj)['tls.crt'], 'base64'));
      assert.ok(cert.verify(anchor.publicKey));
      const hook = server.store.get({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', name: 'mesh-proxy-injector' })!;
      assert.equal((hook.webhooks as Obj[])[0]!.clientConfig.service.name, 'mesh-control');
    });

    it('is idempotent: applying again keeps the identity and changes nothing', async () => {
      const rv = (kind: string, name: string, namespace?: string) => server.store.get({ apiVersion: kind === 'Deployment' ? 'apps/v1' : 'v1', kind, name, namespace })?.metadata.resourceVersion;
      const before = [rv('ConfigMap', 'mesh-identity-trust-roots', 'mesh-system'), rv('Secret', 'mesh-webhook-tls', 'mesh-system'), rv('Deployment', 'mesh-control', 'mesh-system')];
      const r = await k(['install', '--apply', '--wait', '10s']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /√ Applied 13 objects \(0 changed\)/);
      assert.deepEqual([rv('ConfigMap', 'mesh-identity-trust-roots', 'mesh-system'), rv('Secret', 'mesh-webhook-tls', 'mesh-system'), rv('Deployment', 'mesh-control', 'mesh-system')], before);
    });

    it('refuses to install over a mesh with another trust anchor', async () => {
      const r = await k(['install', '--apply', '--identity-trust-anchors-file', join(FIX, 'anchor.crt'), '--identity-issuer-certificate-file', join(FIX, 'issuer.crt'),
        '--identity-issuer-key-file', join(FIX, 'issuer.key')]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /error: a mesh with another trust anchor is installed on fake — pass its trust anchor and issuer/);
    });

    it('refuses a mesh-system namespace that is not labelled as mesh\'s, and gives up waiting after --wait', async () => {
      const other = await startFakeApiServer();
      try {
        const cfg = other.writeKubeconfig(mkdtempSync(join(dir, 'foreign-')));
        const run = (args: string[]) => mesh(['--platform', 'kubernetes', '--kubeconfig', cfg, ...args], { env: cleanEnv(home) });
        assert.equal((await run(['install', '--crds', '--apply'])).code, 0);
        other.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'mesh-system' } });
        const foreign = await run(['install', '--apply']);
        assert.equal(foreign.code, 1);
        assert.match(foreign.stderr, /error: namespace mesh-system exists but is not labelled as mesh's/);
        other.store.delete({ apiVersion: 'v1', kind: 'Namespace', name: 'mesh-system' });
        const slow = await run(['install', '--apply', '--wait', '1s']);
        assert.equal(slow.code, 1);
        assert.match(slow.stderr, /error: the control plane is not ready after 1s \(0\/1 replicas ready\)/);
      } finally {
        await other.close();
      }
    });
  });

  describe('inject', () => {
    let web: Server;
    let url: string;
    before(async () => {
      web = createServer((req, res) => {
        if (req.url === '/app.yaml') res.end(fixture('kube', 'app.yaml'));
        else res.writeHead(404).end();
      });
      await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
      url = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
    });
    after(() => new Promise<void>((r) => web.close(() => r())));

    const anchors = () => ['--trust-anchors-file', join(FIX, 'anchor.crt')];

    it('injects a file, printing YAML on stdout and the report on stderr', async () => {
      const r = await mesh(['inject', join(FIX, 'app.yaml'), ...anchors()], { env: cleanEnv(home) });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /^deployment "reviews-v1" injected$/m);
      assert.match(r.stderr, /^service "reviews" skipped$/m);
      assert.match(r.stderr, /^‼ daemonset "node-agent": hostNetwork/m);
      assert.deepEqual(docs(r.stdout).map((d) => d.kind), ['Service', 'Deployment', 'CronJob', 'DaemonSet', 'Pod', 'StatefulSet', 'ConfigMap']);
    });

    it('injects stdin, a directory and an http URL alike', async () => {
      const viaFile = (await mesh(['inject', join(FIX, 'app.yaml'), ...anchors()], { env: cleanEnv(home) })).stdout;
      const viaUrl = await mesh(['inject', `${url}/app.yaml`, ...anchors()], { env: cleanEnv(home) });
      assert.equal(viaUrl.code, 0, viaUrl.stderr);
      assert.equal(viaUrl.stdout, viaFile);
      const appDir = mkdtempSync(join(dir, 'apps-'));
      copyFileSync(join(FIX, 'app.yaml'), join(appDir, 'a.yaml'));
      writeFileSync(join(appDir, 'b.yml'), 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: extra\nspec:\n  containers:\n  - name: c\n    image: c\n');
      writeFileSync(join(appDir, 'notes.txt'), 'not a manifest');
      const viaDir = await mesh(['inject', appDir, ...anchors()], { env: cleanEnv(home) });
      assert.equal(viaDir.code, 0, viaDir.stderr);
      assert.deepEqual(docs(viaDir.stdout).map((d) => d.metadata.name).slice(-2), ['settings', 'extra']);
      const viaStdin = await mesh(['inject', '-', ...anchors()], { env: cleanEnv(home), stdin: fixture('kube', 'app.yaml') });
      assert.equal(viaStdin.code, 0, viaStdin.stderr);
      assert.equal(viaStdin.stdout, viaFile);
      const notFound = await mesh(['inject', `${url}/nope.yaml`, ...anchors()], { env: cleanEnv(home) });
      assert.match(notFound.stderr, /error: cannot fetch .*\/nope.yaml: HTTP 404/);
    });

    it('says so when neither --trust-anchors-file is given nor mesh is installed on the cluster', async () => {
      const bare = await startFakeApiServer();
      try {
        const cfg = bare.writeKubeconfig(mkdtempSync(join(dir, 'bare-inject-')));
        const r = await mesh(['--kubeconfig', cfg, 'inject', join(FIX, 'app.yaml')], { env: cleanEnv(home) });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /error: mesh is not installed on fake \(no mesh-system\/mesh-identity-trust-roots\) — install it with mesh install --platform kubernetes --apply, or pass --trust-anchors-file/);
        assert.equal(r.stdout, '', 'nothing half-injected on stdout');
      } finally {
        await bare.close();
      }
    });

    it('takes the trust anchors and image from the installed mesh when not given', async () => {
      const r = await k(['inject', join(FIX, 'app.yaml')]);
      assert.equal(r.code, 0, r.stderr);
      const roots = server.store.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'mesh-identity-trust-roots', namespace: 'mesh-system' })!;
      const deploy = docs(r.stdout).find((d) => d.kind === 'Deployment')!;
      const proxy = (deploy.spec.template.spec.initContainers as Obj[]).find((c) => c.name === 'mesh-proxy')!;
      assert.equal((proxy.env as Obj[]).find((e) => e.name === 'MESH_TRUST_ANCHORS')!.value, (roots.data as Obj)['ca-bundle.crt']);
      assert.match(proxy.image, /^ghcr.io\/mesh\/mesh:/);
    });
  });

  describe('uninstall', () => {
    it('renders and deletes exactly what install created, and nothing of the user\'s', async () => {
      // The user's objects: an app namespace with a Deployment, a Route, a ConfigMap labelled part-of mesh by
      // the user (not managed by mesh), a ClusterRole of theirs.
      server.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
      server.store.create({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop' },
        spec: { selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'web' }] } } } });
      server.store.create({ apiVersion: 'mesh.io/v1alpha1', kind: 'Route', metadata: { name: 'web', namespace: 'shop' }, spec: { rules: [{ backends: [{ version: 'v1', weight: 1 }] }] } });
      server.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'mine', namespace: 'shop', labels: { 'app.kubernetes.io/part-of': 'mesh' } } });
      server.store.create({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'user-role' }, rules: [] });
      // A cluster controller's own ConfigMap in every namespace (OpenShift's fork) does not keep mesh-system.
      server.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'openshift-service-ca.crt', namespace: 'mesh-system' } });

      const plan = await k(['uninstall']);
      assert.equal(plan.code, 0, plan.stderr);
      const planned = docs(plan.stdout).map((d) => `${d.kind}/${d.metadata.name}`);
      assert.deepEqual(planned, [
        'MutatingWebhookConfiguration/mesh-proxy-injector', 'Deployment/mesh-control', 'Service/mesh-control',
        'Secret/mesh-identity-issuer', 'Secret/mesh-webhook-tls', 'ConfigMap/mesh-config', 'ConfigMap/mesh-identity-trust-roots',
        'ServiceAccount/mesh-control', 'ClusterRoleBinding/mesh:mesh-control', 'ClusterRole/mesh:mesh-control', 'ClusterRole/mesh:tap-admin', 'RoleBinding/mesh:mesh-control:client-ca',
        'Namespace/mesh-system',
      ]);
      assert.ok(server.store.get({ apiVersion: 'v1', kind: 'Namespace', name: 'mesh-system' }), 'rendering deletes nothing');

      const r = await k(['uninstall', '--apply']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /√ Deleted 13 objects/);
      assert.equal(server.store.get({ apiVersion: 'v1', kind: 'Namespace', name: 'mesh-system' }), undefined);
      assert.equal(server.store.get({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', name: 'mesh:mesh-control' }), undefined);
      assert.equal(server.store.list('admissionregistration.k8s.io/v1', 'MutatingWebhookConfiguration').length, 0);
      for (const ref of [
        { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: 'shop' },
        { apiVersion: 'mesh.io/v1alpha1', kind: 'Route', name: 'web', namespace: 'shop' },
        { apiVersion: 'v1', kind: 'ConfigMap', name: 'mine', namespace: 'shop' },
        { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', name: 'user-role' },
        { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name: 'routes.mesh.io' },
      ]) assert.ok(server.store.get(ref), `${ref.kind} ${ref.name} survives`);

      const purge = await k(['uninstall', '--purge']);
      assert.match(purge.stderr, /error: --purge is for the local platform/);
      const again = await k(['uninstall', '--apply']);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /error: mesh is not installed on fake — nothing to uninstall/);
      const crds = await k(['uninstall', '--apply', '--crds']);
      assert.equal(crds.code, 0, crds.stderr);
      assert.equal(server.store.get({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name: 'routes.mesh.io' }), undefined);
      assert.ok(server.store.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: 'shop' }));
    });

    it('keeps mesh-system when it holds something mesh did not create', async () => {
      const ready = readyWhenCreated(server);
      try {
        assert.equal((await k(['install', '--crds', '--apply'])).code, 0);
        const install = await k(['install', '--apply', '--wait', '30s']);
        assert.equal(install.code, 0, install.stderr);
      } finally {
        ready.stop();
      }
      server.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'notes', namespace: 'mesh-system' } });
      const r = await k(['uninstall', '--apply']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /‼ namespace mesh-system kept: it holds configmap\/notes, which mesh did not create/);
      assert.ok(server.store.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'notes', namespace: 'mesh-system' }));
      assert.equal(server.store.get(DEPLOY), undefined);
    });
  });
});
