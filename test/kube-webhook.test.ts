// The injector webhook: AdmissionReview in, base64 JSONPatch out; directly, and served by
// `mesh control --platform kubernetes` against the fake API server.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { admit, type AdmissionReview, type PatchOp } from '../src/platform/kubernetes/webhook.js';
import { injectTemplate } from '../src/platform/kubernetes/inject.js';
import { HttpError } from '../src/util/http.js';
import { startFakeApiServer, type FakeApiServer } from './support/kube/fake-api-server.js';
import { callJson } from './support/http.js';
import { startKubeControlProcess, type KubeControlProcess } from './support/kube-mesh.js';
import { validateK8s } from './support/k8s-openapi.js';
import { fixture } from './support/golden.js';
import { injectOpts } from './support/kube-fixtures.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** RFC 6902 "add" (all the webhook emits): sets a member, creating nothing on the way. */
function applyPatch(doc: Obj, ops: PatchOp[]): Obj {
  const out = structuredClone(doc);
  for (const op of ops) {
    assert.equal(op.op, 'add');
    const parts = op.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop()!;
    let at: Obj = out;
    for (const p of parts) {
      assert.ok(at[p] !== undefined, `patch path ${op.path} exists`);
      at = at[p];
    }
    at[last] = op.value;
  }
  return out;
}

const pod = (annotations?: Record<string, string>, spec: Obj = {}): Obj => ({
  apiVersion: 'v1', kind: 'Pod',
  metadata: { generateName: 'web-7d9f8-', namespace: 'shop', labels: { app: 'web' }, ...(annotations ? { annotations } : {}) },
  spec: { serviceAccountName: 'web', containers: [{ name: 'web', image: 'web:1', ports: [{ containerPort: 8080 }] }], ...spec },
});

const review = (object: Obj, o: { namespace?: string; kind?: string; operation?: string } = {}): AdmissionReview => ({
  apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
  request: { uid: 'd595d0e5-0b29-4c11-9bd6-6e5a8d36c2a1', kind: { group: '', version: 'v1', kind: o.kind ?? 'Pod' }, namespace: o.namespace ?? 'shop', operation: o.operation ?? 'CREATE', object },
});

const labels: Record<string, Record<string, string>> = { shop: { 'mesh.io/inject': 'enabled' }, plain: {} };
const admitOpts = { inject: injectOpts(), namespaceLabels: async (ns: string) => labels[ns] };
const patchOf = (r: AdmissionReview): PatchOp[] | undefined => (r.response?.patch ? JSON.parse(Buffer.from(r.response.patch, 'base64').toString()) : undefined);

describe('injector webhook (handler)', () => {
  it('injects a pod of a namespace labelled mesh.io/inject=enabled with a base64 JSONPatch', async () => {
    const p = pod();
    const r = await admit(review(p), admitOpts);
    assert.equal(r.apiVersion, 'admission.k8s.io/v1');
    assert.equal(r.kind, 'AdmissionReview');
    assert.equal(r.response?.uid, 'd595d0e5-0b29-4c11-9bd6-6e5a8d36c2a1');
    assert.equal(r.response?.allowed, true);
    assert.equal(r.response?.patchType, 'JSONPatch');
    const patched = applyPatch(p, patchOf(r)!);
    // The same transform as mesh inject.
    const expected = structuredClone({ metadata: p.metadata, spec: p.spec });
    injectTemplate(expected, injectOpts());
    assert.deepEqual({ metadata: patched.metadata, spec: patched.spec }, expected);
    assert.deepEqual(patched.spec.initContainers.map((c: Obj) => c.name), ['mesh-init', 'mesh-proxy']);
    validateK8s(patched);
  });

  it('follows the pod annotation over the namespace label', async () => {
    assert.ok(patchOf(await admit(review(pod({ 'mesh.io/inject': 'enabled' }), { namespace: 'plain' }), admitOpts)));
    assert.equal(patchOf(await admit(review(pod({ 'mesh.io/inject': 'disabled' })), admitOpts)), undefined);
    assert.equal(patchOf(await admit(review(pod(), { namespace: 'plain' }), admitOpts)), undefined);
    assert.equal(patchOf(await admit(review(pod(), { namespace: 'unknown' }), admitOpts)), undefined);
  });

  it('admits unchanged what it must not touch: injected pods, host-network pods (with a warning), other kinds and operations', async () => {
    const injected = applyPatch(pod(), patchOf(await admit(review(pod()), admitOpts))!);
    assert.deepEqual((await admit(review(injected), admitOpts)).response, { uid: 'd595d0e5-0b29-4c11-9bd6-6e5a8d36c2a1', allowed: true });
    const host = await admit(review(pod(undefined, { hostNetwork: true })), admitOpts);
    assert.equal(host.response?.patch, undefined);
    assert.match(host.response?.warnings?.[0] ?? '', /^mesh: hostNetwork/);
    assert.equal((await admit(review({ metadata: { name: 'x' } }, { kind: 'Service' }), admitOpts)).response?.patch, undefined);
    assert.equal((await admit(review(pod(), { operation: 'UPDATE' }), admitOpts)).response?.patch, undefined);
  });

  it('adds labels and annotations to a pod that had none, and keeps the pod\'s own init containers after the proxy', async () => {
    const p = pod();
    delete p.metadata.labels;
    p.spec.initContainers = [{ name: 'migrate', image: 'm:1' }];
    const patched = applyPatch(p, patchOf(await admit(review(p), admitOpts))!);
    assert.equal(patched.metadata.labels['mesh.io/control-plane-ns'], 'mesh-system');
    assert.ok(patched.metadata.annotations['mesh.io/proxy-version']);
    assert.deepEqual(patched.spec.initContainers.map((c: Obj) => c.name), ['mesh-init', 'mesh-proxy', 'migrate']);
  });

  it('answers 400 to a body that is not an AdmissionReview', async () => {
    for (const bad of [null, {}, { kind: 'AdmissionReview' }, { kind: 'Pod', request: { uid: 'x' } }]) {
      await assert.rejects(admit(bad, admitOpts), (e: unknown) => e instanceof HttpError && e.status === 400);
    }
  });
});

describe('mesh control --platform kubernetes', () => {
  let server: FakeApiServer;
  let dir: string;
  let control: KubeControlProcess;
  let ports: { control: number; webhook: number };

  before(async () => {
    server = await startFakeApiServer();
    server.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'mesh.io/inject': 'enabled' } } });
    dir = mkdtempSync(join(tmpdir(), 'mesh-kube-control-'));
    // The files the Deployment mounts from the issuer Secret, the trust-roots ConfigMap and the webhook Secret.
    for (const d of ['identity/trust-roots', 'identity/issuer', 'webhook']) mkdirSync(join(dir, d), { recursive: true });
    writeFileSync(join(dir, 'identity/trust-roots/ca-bundle.crt'), fixture('kube', 'anchor.crt'));
    writeFileSync(join(dir, 'identity/issuer/tls.crt'), fixture('kube', 'issuer.crt'));
    writeFileSync(join(dir, 'identity/issuer/tls.key'), fixture('kube', 'issuer.key'));
    writeFileSync(join(dir, 'webhook/tls.crt'), fixture('kube', 'webhook.crt'));
    writeFileSync(join(dir, 'webhook/tls.key'), fixture('kube', 'webhook.key'));
    control = await startKubeControlProcess(server, dir, { MESH_IDENTITY_DIR: join(dir, 'identity'), MESH_WEBHOOK_DIR: join(dir, 'webhook'), MESH_PROXY_IMAGE: 'mesh:dev' });
    ports = { control: control.port, webhook: control.webhookPort };
  });
  after(async () => {
    await control?.process.stop();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = (port: number, path: string, o: { body?: unknown; ca: string; servername: string }) =>
    callJson(`https://127.0.0.1:${port}${path}`, { method: o.body ? 'POST' : 'GET', json: o.body, tls: { ca: o.ca, servername: o.servername } });

  it('serves the webhook over TLS the API server verifies with the installed CA bundle, reading namespace labels from the cluster', async () => {
    const opts = { ca: fixture('kube', 'webhook-ca.crt'), servername: 'mesh-control.mesh-system.svc' };
    const r = await call(ports.webhook, '/inject', { ...opts, body: review(pod()) });
    assert.equal(r.status, 200);
    const ops = patchOf(r.body as AdmissionReview)!;
    const patched = applyPatch(pod(), ops);
    assert.equal(patched.spec.initContainers[1].image, 'mesh:dev');
    const plain = await call(ports.webhook, '/inject', { ...opts, body: review(pod(), { namespace: 'default' }) });
    assert.equal(plain.body.response.patch, undefined, 'default is not labelled');
    const bad = await call(ports.webhook, '/inject', { ...opts, body: { hello: 'world' } });
    assert.equal(bad.status, 400);
    assert.match(control.process.output(), /webhook: pod shop\/web-7d9f8- injected/);
  });

  it('answers the readiness probe on the control port with a certificate from the issuer', async () => {
    const r = await call(ports.control, '/ready', { ca: fixture('kube', 'anchor.crt'), servername: 'mesh-control.mesh-system.svc' });
    assert.deepEqual([r.status, r.body], [200, { ready: true }]);
  });
});
