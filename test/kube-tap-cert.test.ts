// mesh tap on Kubernetes for users who authenticate with a client certificate only (kubeadm's and kind's admin),
// against the fake API server: the CLI presents the kubeconfig's certificate in its own TLS handshake with
// mesh-control, through the port-forward; mesh-control verifies it against the cluster's client CA (the client-ca-file
// of kube-system/extension-apiserver-authentication, watched), never the mesh's anchors, then asks a
// SubjectAccessReview. A mesh workload certificate is no Kubernetes user, and a Kubernetes user no mesh workload.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { spawn } from 'node:child_process';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { assertOneLineError, MESH_BIN, waitFor } from './support/mesh.js';
import { fixture } from './support/golden.js';
import { startTapBed, type TapBed } from './support/fake-kube-tap.js';
import { clientCa, clientCert } from './support/kube/tls.js';
import { ControlClient } from '../src/api/client.js';
import { generateKey, Issuer } from '../src/identity/ca.js';
import { kubeCertificateUser } from '../src/platform/kubernetes/tap-access.js';

describe('mesh tap on kubernetes as a client-certificate user', () => {
  let bed: TapBed;
  const clients: ControlClient[] = [];
  /** A direct client of mesh-control presenting this certificate (what the port-forward carries, without the API server). */
  const as = (cred: { certPem: string; keyPem: string }) => {
    const ctx = tls.createSecureContext({ ca: fixture('kube', 'anchor.crt'), cert: cred.certPem, key: cred.keyPem, minVersion: 'TLSv1.3' });
    const c = new ControlClient(`127.0.0.1:${bed.control.port}`, fixture('kube', 'anchor.crt'), 'cluster.local', () => ctx);
    clients.push(c);
    return c;
  };
  const openTap = (c: ControlClient) => c.request<{ id?: string; error?: string }>('GET', '/v1/tap?target=deploy/reviews-v1&namespace=default');

  before(async () => {
    bed = await startTapBed('mesh-ktap-cert-');
  });
  after(async () => {
    for (const c of clients) c.close();
    await bed?.stop();
  });

  it('streams a deployment\'s requests to a certificate user RBAC lets tap it (CN the user, O the groups, then a SubjectAccessReview)', async () => {
    const stop = bed.load();
    const r = await bed.cli('alice', ['tap', 'deploy/reviews-v1', '--count', '2', '--duration', '30s']);
    await stop();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.split('\n')[0]!, /^req id=reviews-v1-7d9f-x1:\d+ proxy=in .* :path=\/reviews\/0$/);
    assert.ok(bed.server.requests.some((q) => q.path.endsWith('/subjectaccessreviews')), 'the control plane asked a SubjectAccessReview');
    assert.doesNotMatch(readFileSync(bed.kubeconfig.alice, 'utf8'), /token/, 'alice has a client certificate only');
  });

  it('mesh top works for a certificate user too (the same tap underneath)', async () => {
    const stop = bed.load();
    const r = await bed.cli('alice', ['top', 'deploy/reviews-v1', '-o', 'json', '--duration', '4s', '--refresh', '1s']);
    await stop();
    assert.equal(r.code, 0, r.stderr);
    const last = JSON.parse(r.stdout.trim().split('\n').pop()!) as { rows: { path: string; count: number }[] };
    assert.ok(last.rows.some((x) => x.path === '/reviews/0' && x.count > 0), r.stdout);
  });

  it('refuses a verified certificate user RBAC does not let tap, saying the missing permission and a command that grants it', async () => {
    const r = await bed.cli('dan', ['tap', 'deploy/reviews-v1', '--duration', '5s']);
    assertOneLineError(r, /dan may not tap deploy\/reviews-v1 in namespace default: RBAC needs verb watch on deployments\/tap in API group tap\.mesh\.io/);
    assert.match(r.stderr, /kubectl create rolebinding dan-tap -n default --clusterrole mesh:tap-admin --user 'dan'/);
  });

  it('refuses, with 401 and the reason, a certificate from another CA, an expired one, and a mesh workload certificate', async () => {
    const foreign = await openTap(as(clientCert('alice', ['dev'], { ca: clientCa('another-cluster-ca') })));
    assert.equal(foreign.status, 401);
    assert.match(foreign.body.error!, /^your client certificate was refused: the client certificate was not issued by the cluster's client CA \(client-ca-file in configmap kube-system\/extension-apiserver-authentication\)$/);

    const expired = await openTap(as(clientCert('alice', ['dev'], { expired: true })));
    assert.equal(expired.status, 401);
    assert.match(expired.body.error!, /the client certificate expired on \d{4}-/);

    // A real workload certificate (the mesh's issuer): the mesh's anchors verify it, so it is no Kubernetes user.
    const kp = await generateKey();
    const leaf = new Issuer({ certPem: fixture('kube', 'issuer.crt'), keyPem: fixture('kube', 'issuer.key') })
      .issueLeaf({ uri: 'spiffe://cluster.local/ns/default/sa/reviews', publicKeyPem: kp.publicKeyPem, lifetimeMs: 3600_000 });
    const workload = await openTap(as({ certPem: leaf + fixture('kube', 'issuer.crt'), keyPem: kp.keyPem }));
    assert.equal(workload.status, 401);
    assert.match(workload.body.error!, /a mesh workload certificate is not a Kubernetes user/);

    // One from the cluster's client CA dressed as a workload (a SPIFFE URI SAN) is refused too.
    const dressed = await openTap(as(clientCert('alice', ['dev'], { uri: 'spiffe://cluster.local/ns/default/sa/reviews' })));
    assert.equal(dressed.status, 401);
    assert.match(dressed.body.error!, /a mesh workload certificate \(spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews\) is not a Kubernetes user/);
  });

  it('a Kubernetes user\'s client certificate is no mesh identity: the proxies\' API refuses it', async () => {
    const c = as(clientCert('system:serviceaccount:default:reviews', ['system:serviceaccounts']));
    const watch = await c.request<{ error: string }>('GET', '/v1/tap/watch?instance=reviews-v1-7d9f-x1');
    assert.equal(watch.status, 401);
    assert.match(watch.body.error, /a valid mesh client certificate is required/);
    const spans = { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'forged' } }] }, scopeSpans: [{ spans: [{ traceId: 'f'.repeat(32), spanId: 'f'.repeat(16), name: 'x' }] }] }] };
    assert.equal((await c.request('POST', '/v1/traces', spans)).status, 401);
    assert.equal((await c.request('POST', '/v1/tap/report', { instance: 'reviews-v1-7d9f-x1', events: {} })).status, 401);
  });

  it('picks up a rotated client CA from the ConfigMap\'s watch: the new CA\'s users are let in, the old one\'s no longer', async () => {
    const ref = { apiVersion: 'v1', kind: 'ConfigMap', name: 'extension-apiserver-authentication', namespace: 'kube-system' };
    const original = bed.server.clientCaPem!;
    const next = clientCa('rotated-client-ca');
    const rotated = as(clientCert('alice', ['dev'], { ca: next }));
    const old = as(clientCert('alice', ['dev']));
    assert.equal((await openTap(rotated)).status, 401);
    try {
      bed.server.store.patch(ref, { data: { 'client-ca-file': next.certPem } });
      await waitFor('the rotated CA in effect', async () => (await openTap(rotated)).status === 200, 15_000, 100);
      assert.equal((await openTap(old)).status, 401);
    } finally {
      bed.server.store.patch(ref, { data: { 'client-ca-file': original } });
      await waitFor('the original CA back', async () => (await openTap(old)).status === 200, 15_000, 100);
    }
  });

  it('mesh dashboard\'s live calls work for a certificate user (tap through the same forward, as alice)', async () => {
    const dash = spawn(process.execPath, [MESH_BIN, '--platform', 'kubernetes', '--kubeconfig', bed.kubeconfig.alice, 'dashboard', '--port', '0'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...bed.env } });
    let out = '';
    dash.stdout!.on('data', (c) => (out += c));
    dash.stderr!.on('data', (c) => (out += c));
    try {
      const url = new URL((await waitFor('the dashboard URL', () => /http:\/\/127\.0\.0\.1:\d+\/\?token=\S+/.exec(out)?.[0], 30_000))!);
      const cookie = (await fetch(url, { redirect: 'manual' })).headers.get('set-cookie')!.split(';')[0]!;
      const tap = await fetch(new URL('/api/tap?target=deploy/reviews-v1&namespace=default&maxRps=5', url.origin), { headers: { cookie } });
      assert.equal(tap.status, 200, await tap.text());
    } finally {
      dash.kill('SIGTERM');
      await new Promise((r) => dash.once('exit', r));
    }
  });
});

describe('a kubeconfig client certificate verified as the API server\'s x509 authenticator does (kubeCertificateUser)', () => {
  const x = (pem: string) => new X509Certificate(pem);
  const root = clientCa();

  it('names CN the user and O the groups, through an intermediate the client sends', () => {
    const mid = clientCa('kubernetes-client-intermediate', root);
    const leaf = clientCert('erin', ['dev', 'ops'], { ca: mid });
    assert.deepEqual(kubeCertificateUser([x(leaf.certPem), x(mid.certPem)], [x(root.certPem)]), { name: 'erin', admin: false, groups: ['dev', 'ops', 'system:authenticated'] });
    assert.match((kubeCertificateUser([x(leaf.certPem)], [x(root.certPem)]) as { refused: string }).refused, /not issued by the cluster's client CA/, 'not without the intermediate');
  });

  it('refuses one without the clientAuth usage, a CA as a leaf, and any when no client CA is known', () => {
    const server = clientCert('erin', [], { serverAuthOnly: true });
    assert.match((kubeCertificateUser([x(server.certPem)], [x(root.certPem)]) as { refused: string }).refused, /no clientAuth extended key usage/);
    assert.match((kubeCertificateUser([x(root.certPem)], [x(root.certPem)]) as { refused: string }).refused, /is a CA certificate/);
    assert.match((kubeCertificateUser([x(clientCert('erin').certPem)], []) as { refused: string }).refused, /mesh-control has no client CA of the cluster/);
  });
});
