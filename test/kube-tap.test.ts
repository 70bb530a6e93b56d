// mesh tap and mesh dashboard on Kubernetes, against the fake API server: the CLI reaches mesh-control (a child
// process) through a pods/portforward WebSocket, sends its kubeconfig user's token, and the control plane decides
// with a TokenReview and a SubjectAccessReview on tap.mesh.io. A real kube sidecar reports what the tap selects.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeApiServer, type FakeApiServer } from './support/kube/fake-api-server.js';
import { assertOneLineError, mesh, MESH_BIN, startMesh, waitFor } from './support/mesh.js';
import { get } from './support/http.js';
import { fixture } from './support/golden.js';
import { seedControlPlane, startKubeControlProcess, type KubeControlProcess } from './support/kube-mesh.js';
import type { Started } from './support/process.js';
import { spawn } from 'node:child_process';
import { renderCrds } from '../src/platform/kubernetes/crds.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const CONTROL_POD = 'mesh-control-5c9d-abcde';

describe('mesh tap and mesh dashboard on kubernetes, through a port-forward', () => {
  let server: FakeApiServer;
  let dir: string;
  let control: KubeControlProcess;
  let proxy: Started;
  let app: http.Server;
  let inbound = '';
  const kubeconfig: Record<string, string> = {};
  const cli = (user: string, args: string[], timeoutMs = 60_000) =>
    mesh(['--platform', 'kubernetes', '--kubeconfig', kubeconfig[user]!, ...args], { env: { HOME: dir, KUBECONFIG: '', MESH_PLATFORM: '' }, timeoutMs });

  before(async () => {
    server = await startFakeApiServer({
      tokenReviews: {
        'projected-reviews': { username: 'system:serviceaccount:default:reviews', audiences: ['mesh.io'] },
        'jane-token': { username: 'jane', groups: ['system:authenticated'] },
        'bob-token': { username: 'bob', groups: ['system:authenticated'] },
        'carol-token': { username: 'carol', groups: ['system:authenticated'] },
      },
      // bob may not tap; carol may not port-forward into mesh-system. jane (and the admin) may do both.
      deny: [
        { verb: 'watch', group: 'tap.mesh.io', resource: 'deployments/tap', user: 'bob' },
        { verb: 'create', group: '', resource: 'pods/portforward', namespace: 'mesh-system', user: 'carol' },
      ],
    });
    dir = mkdtempSync(join(tmpdir(), 'mesh-ktap-'));
    for (const user of ['jane', 'bob', 'carol']) {
      kubeconfig[user] = join(dir, `${user}.kubeconfig`);
      writeFileSync(kubeconfig[user]!, server.kubeconfigYaml.replace(server.token, `${user}-token`), { mode: 0o600 });
    }
    for (const crd of renderCrds()) server.store.create(crd as Obj);
    seedControlPlane(server, { trustAnchorsPem: fixture('kube', 'anchor.crt'), issuerCertPem: fixture('kube', 'issuer.crt'), issuerKeyPem: fixture('kube', 'issuer.key') });
    // A pod of Deployment reviews-v1 (through its ReplicaSet), meshed, and the control plane's pod.
    server.store.create({
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: 'reviews-v1-7d9f-x1', namespace: 'default', labels: { app: 'reviews', version: 'v1', 'pod-template-hash': '7d9f' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'reviews-v1-7d9f', uid: 'u1', controller: true }] },
      spec: { serviceAccountName: 'reviews', initContainers: [{ name: 'mesh-proxy', image: 'ghcr.io/mesh/mesh:test', restartPolicy: 'Always' }], containers: [{ name: 'app', image: 'example/app' }] },
      status: { phase: 'Running', podIP: '10.1.0.1' },
    });
    server.store.create({
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: CONTROL_POD, namespace: 'mesh-system', labels: { 'app.kubernetes.io/part-of': 'mesh', 'app.kubernetes.io/component': 'control' } },
      spec: { containers: [{ name: 'control', image: 'ghcr.io/mesh/mesh:test' }] },
      status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
    });
    control = await startKubeControlProcess(server, dir);
    server.portForwards.set(`mesh-system/${CONTROL_POD}:8443`, `127.0.0.1:${control.port}`);

    // The pod's sidecar, as kube-control-process runs one: its projected token, the app behind it.
    app = http.createServer((_req, res) => res.end('reviews ok'));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'projected-reviews\n');
    proxy = startMesh(['--platform', 'kubernetes', 'proxy', '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0'], {
      ...process.env, MESH_NAMESPACE: 'default', MESH_POD_NAME: 'reviews-v1-7d9f-x1', MESH_SERVICE_ACCOUNT: 'reviews', MESH_VERSION: 'v1',
      MESH_TRUST_DOMAIN: 'cluster.local', MESH_CONTROL_ADDRESS: `127.0.0.1:${control.port}`, MESH_IDENTITY_TOKEN_FILE: tokenFile,
      MESH_TRUST_ANCHORS: fixture('kube', 'anchor.crt'), MESH_APP_PORT: String((app.address() as { port: number }).port),
    });
    const addrs = await proxy.until('its listeners', (out) => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      return line ? JSON.parse(line) as { admin: string; inbound: string } : undefined;
    }, 30_000);
    inbound = `127.0.0.1:${addrs.inbound.split(':').pop()}`;
    const admin = `127.0.0.1:${addrs.admin.split(':').pop()}`;
    await waitFor('the sidecar to be ready', async () => (await get(admin, '/ready')).status === 200, 30_000, 100);
  });
  after(async () => {
    await proxy?.stop();
    app?.close();
    await control?.process.stop();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Requests to the sidecar's inbound port until stopped (plaintext, as a kubelet probe comes). */
  function load(): () => Promise<void> {
    let stopped = false;
    const done = (async () => {
      while (!stopped) {
        await get(inbound, '/reviews/0').catch(() => {});
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    return async () => {
      stopped = true;
      await done;
    };
  }

  it('streams a deployment\'s requests to a user RBAC lets tap it, the caller checked by TokenReview and SubjectAccessReview', async () => {
    const stop = load();
    const r = await cli('jane', ['tap', 'deploy/reviews-v1', '--count', '2', '--duration', '30s']);
    await stop();
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^req id=reviews-v1-7d9f-x1:\d+ proxy=in src=- dst=ns\/default\/sa\/reviews tls=false :method=GET :authority=\S+ :path=\/reviews\/0$/);
    assert.match(lines[1]!, /^rsp .* :status=200 latency=\d+µs/);
    const reviews = server.requests.filter((q) => q.path.endsWith('/subjectaccessreviews') || q.path.endsWith('/tokenreviews'));
    assert.ok(reviews.some((q) => q.path.endsWith('/subjectaccessreviews')), 'the control plane asked a SubjectAccessReview');
  });

  it('refuses a user without RBAC on tap.mesh.io in one line naming the ClusterRole', async () => {
    const r = await cli('bob', ['tap', 'deploy/reviews-v1', '--duration', '5s']);
    assertOneLineError(r, /bob may not tap deploy\/reviews-v1 in namespace default: RBAC needs verb watch on deployments\/tap in API group tap\.mesh\.io/);
    assert.match(r.stderr, /mesh:tap-admin/);
  });

  it('says a refused port-forward in one line', async () => {
    assertOneLineError(await cli('carol', ['tap', 'deploy/reviews-v1', '--duration', '5s']), /port-forward to mesh-system\/mesh-control-5c9d-abcde:8443: .*403/);
  });

  it('refuses a token the API server does not accept, and a tap of another user', async () => {
    const { ControlClient } = await import('../src/api/client.js');
    const c = new ControlClient(`127.0.0.1:${control.port}`, fixture('kube', 'anchor.crt'), 'cluster.local');
    try {
      assert.equal((await c.request('GET', '/v1/tap?target=deploy/reviews-v1', undefined, { bearer: 'forged' })).status, 401);
      assert.equal((await c.request('GET', '/v1/tap?target=deploy/reviews-v1')).status, 401);
      const opened = await c.request<{ id: string }>('GET', '/v1/tap?target=deploy/reviews-v1', undefined, { bearer: 'jane-token' });
      assert.equal(opened.status, 200);
      // A tap is polled and closed only by whoever opened it.
      assert.equal((await c.request('GET', `/v1/tap?id=${opened.body.id}&waitMs=0`, undefined, { bearer: 'carol-token' })).status, 404);
      assert.deepEqual((await c.request('DELETE', `/v1/tap/${opened.body.id}`, undefined, { bearer: 'carol-token' })).body, { closed: false });
      assert.deepEqual((await c.request('DELETE', `/v1/tap/${opened.body.id}`, undefined, { bearer: 'jane-token' })).body, { closed: true });
    } finally {
      c.close();
    }
  });

  it('mesh dashboard serves the control plane\'s views on a local URL, and closes the forward when it stops', async () => {
    const dash = spawn(process.execPath, [MESH_BIN, '--platform', 'kubernetes', '--kubeconfig', kubeconfig.jane!, 'dashboard', '--port', '0'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: dir, KUBECONFIG: '', MESH_PLATFORM: '' } });
    let out = '';
    dash.stdout!.on('data', (c) => (out += c));
    dash.stderr!.on('data', (c) => (out += c));
    try {
      const url = new URL((await waitFor('the dashboard URL', () => /http:\/\/127\.0\.0\.1:\d+\/\?token=\S+/.exec(out)?.[0], 20_000))!);
      const login = await fetch(url, { redirect: 'manual' });
      assert.equal(login.status, 303);
      const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
      for (const path of ['/api/stat?resource=deployment&all=true&window=30s', '/api/config/routes', '/api/snapshot', '/api/endpoints']) {
        const r = await fetch(new URL(path, url.origin), { headers: { cookie } });
        assert.equal(r.status, 200, `${path}: ${await r.text()}`);
      }
      const stat = await (await fetch(new URL('/api/stat?resource=deployment&all=true&window=30s', url.origin), { headers: { cookie } })).json() as { rows: { name: string }[] };
      assert.ok(stat.rows.some((x) => x.name === 'reviews-v1'), JSON.stringify(stat));
      // The dashboard's live calls go through the same tap API, as jane.
      const tap = await fetch(new URL('/api/tap?target=deploy/reviews-v1&namespace=default&maxRps=5', url.origin), { headers: { cookie } });
      assert.equal(tap.status, 200);
    } finally {
      dash.kill('SIGTERM');
      await new Promise((r) => dash.once('exit', r));
    }
  });
});
