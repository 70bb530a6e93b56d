// The Kubernetes control plane's identity epoch: the snapshot it serves names the trust anchors and issuer it signs
// with, and a new issuer (the Secret edited, read through the API) or a new bundle and issuer (the mounted files
// swapped by the kubelet) is picked up without a restart, bumping the epoch so proxies renew at once.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeApiServer, type FakeApiServer } from './support/kube/fake-api-server.js';
import { asProxy, kubeClientFor, seedControlPlane } from './support/kube-mesh.js';
import { KubeClient } from '../src/platform/kubernetes/client.js';
import { runKubeControl, type RunningKubeControl } from '../src/platform/kubernetes/control.js';
import { ISSUER_SECRET } from '../src/platform/kubernetes/names.js';
import { createCsr, createIssuer, createTrustAnchor, generateKey, type CertAndKey } from '../src/identity/ca.js';
import { identityEpoch } from '../src/identity/epoch.js';
import type { Snapshot } from '../src/model/snapshot.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('the Kubernetes control plane and its identity epoch', () => {
  let server: FakeApiServer;
  let dir: string;
  let anchor: CertAndKey;
  let anchor2: CertAndKey;
  let issuer1: CertAndKey;
  let issuer2: CertAndKey;
  let kube: KubeClient;

  before(async () => {
    anchor = await createTrustAnchor('cluster.local');
    anchor2 = await createTrustAnchor('cluster.local');
    issuer1 = await createIssuer('cluster.local', anchor);
    issuer2 = await createIssuer('cluster.local', anchor);
    server = await startFakeApiServer({ tokenReviews: { 'projected-reviews': { username: 'system:serviceaccount:default:reviews', audiences: ['mesh.io'] } } });
    dir = mkdtempSync(join(tmpdir(), 'mesh-kident-'));
    const identity = { trustAnchorsPem: anchor.certPem, issuerCertPem: issuer1.certPem, issuerKeyPem: issuer1.keyPem };
    seedControlPlane(server, identity);
    kube = await kubeClientFor(server);
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A proxy's view: a certificate for its projected token, then the snapshot watch with it. */
  async function proxyView(port: number) {
    const { call, present } = asProxy(port);
    const certify = async () => {
      const kp = await generateKey();
      const r = await call('POST', '/v1/certificates', { bearer: 'projected-reviews', body: { namespace: 'default', serviceAccount: 'reviews', csr: createCsr(kp, 'reviews') } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return { kp, body: r.body };
    };
    const first = await certify();
    present(first.body as { certificate: string; chain: string[]; trustAnchors: string }, first.kp.keyPem);
    const snapshot = async () => (await call('GET', '/v1/watch?since=')).body as Snapshot;
    /** Follows the watch until the snapshot carries epoch `want` (bounded: the last snapshot seen otherwise). */
    const epochBecomes = async (want: string): Promise<Snapshot> => {
      const deadline = Date.now() + 15_000;
      let snap = await snapshot();
      while (snap.identityEpoch !== want && Date.now() < deadline) {
        const r = await call('GET', `/v1/watch?since=${encodeURIComponent(snap.version)}`);
        if (r.status === 200) snap = r.body as Snapshot;
      }
      return snap;
    };
    return { snapshot, epochBecomes, certify };
  }

  describe('read through the API (mesh control --kubeconfig)', () => {
    let control: RunningKubeControl;
    const logs: string[] = [];
    before(async () => {
      control = await runKubeControl(kube, { port: 0, webhookPort: 0, address: '127.0.0.1', env: { MESH_TRUST_DOMAIN: 'cluster.local' }, log: (l) => logs.push(l) });
    });
    after(async () => {
      await control?.close();
    });

    it('serves the epoch of its anchors and issuer, and a new one when the issuer Secret changes', async () => {
      const proxy = await proxyView(control.port);
      const before = await proxy.snapshot();
      assert.equal(before.identityEpoch, identityEpoch(anchor.certPem, issuer1.certPem));
      server.store.patch({ apiVersion: 'v1', kind: 'Secret', name: ISSUER_SECRET, namespace: 'mesh-system' },
        { data: { 'tls.crt': b64(issuer2.certPem), 'tls.key': b64(issuer2.keyPem) } });
      const want = identityEpoch(anchor.certPem, issuer2.certPem);
      assert.notEqual(want, before.identityEpoch);
      assert.equal((await proxy.epochBecomes(want)).identityEpoch, want, logs.join('\n'));
      // Certificates now come from the new issuer.
      const renewed = await proxy.certify();
      assert.deepEqual(renewed.body.chain, [issuer2.certPem]);
      assert.ok(logs.some((l) => /identity reloaded .*proxies renew now/.test(l)), logs.join('\n'));
    });

    it('keeps the identity it has when the Secret holds one it cannot use', async () => {
      const proxy = await proxyView(control.port);
      const epoch = (await proxy.snapshot()).identityEpoch;
      server.store.patch({ apiVersion: 'v1', kind: 'Secret', name: ISSUER_SECRET, namespace: 'mesh-system' }, { data: { 'tls.key': b64('not a key') } });
      const deadline = Date.now() + 10_000;
      while (!logs.some((l) => /identity changed but not reloaded/.test(l)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok(logs.some((l) => /identity changed but not reloaded \(the previous one stays\)/.test(l)), logs.join('\n'));
      assert.equal((await proxy.snapshot()).identityEpoch, epoch);
      assert.deepEqual((await proxy.certify()).body.chain, [issuer2.certPem]);
    });
  });

  describe('mounted in the pod (files the kubelet swaps)', () => {
    let control: RunningKubeControl;
    const logs: string[] = [];
    const identityDir = () => join(dir, 'identity');
    const mount = (anchorsPem: string, issuer: CertAndKey) => {
      mkdirSync(join(identityDir(), 'trust-roots'), { recursive: true });
      mkdirSync(join(identityDir(), 'issuer'), { recursive: true });
      writeFileSync(join(identityDir(), 'trust-roots', 'ca-bundle.crt'), anchorsPem);
      writeFileSync(join(identityDir(), 'issuer', 'tls.key'), issuer.keyPem);
      writeFileSync(join(identityDir(), 'issuer', 'tls.crt'), issuer.certPem);
    };
    before(async () => {
      mount(anchor.certPem, issuer1);
      control = await runKubeControl(kube, {
        port: 0, webhookPort: 0, address: '127.0.0.1', log: (l) => logs.push(l),
        env: { MESH_TRUST_DOMAIN: 'cluster.local', MESH_IDENTITY_DIR: identityDir(), MESH_IDENTITY_POLL_INTERVAL: '100ms' },
      });
    });
    after(async () => {
      await control?.close();
    });

    it('bumps the epoch when the bundle gains an anchor and the issuer changes', async () => {
      const proxy = await proxyView(control.port);
      const before = await proxy.snapshot();
      assert.equal(before.identityEpoch, identityEpoch(anchor.certPem, issuer1.certPem));
      // Rotation's first phase: the bundle holds both anchors, the issuer is new.
      const bundle = anchor.certPem + anchor2.certPem;
      mount(bundle, issuer2);
      const want = identityEpoch(bundle, issuer2.certPem);
      assert.equal((await proxy.epochBecomes(want)).identityEpoch, want, logs.join('\n'));
      const renewed = await proxy.certify();
      assert.equal(renewed.body.trustAnchors, bundle);
      assert.deepEqual(renewed.body.chain, [issuer2.certPem]);
    });
  });
});
