// mesh tap and mesh dashboard on Kubernetes, against the fake API server: the CLI reaches mesh-control (a child
// process) through a pods/portforward WebSocket, sends its kubeconfig user's token, and the control plane decides
// with a TokenReview and a SubjectAccessReview on tap.mesh.io. A real kube sidecar reports what the tap selects.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { spawn } from 'node:child_process';
import { assertOneLineError, MESH_BIN, waitFor } from './support/mesh.js';
import { fixture } from './support/golden.js';
import { startTapBed, type TapBed } from './support/fake-kube-tap.js';

describe('mesh tap and mesh dashboard on kubernetes, through a port-forward', () => {
  let bed: TapBed;
  const cli = (user: 'jane' | 'bob' | 'carol', args: string[], timeoutMs?: number) => bed.cli(user, args, timeoutMs);
  const load = () => bed.load();

  before(async () => {
    bed = await startTapBed('mesh-ktap-');
  });
  after(async () => {
    await bed?.stop();
  });

  it('streams a deployment\'s requests to a user RBAC lets tap it, the caller checked by TokenReview and SubjectAccessReview', async () => {
    const stop = load();
    const r = await cli('jane', ['tap', 'deploy/reviews-v1', '--count', '2', '--duration', '30s']);
    await stop();
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^req id=reviews-v1-7d9f-x1:\d+ proxy=in src=- dst=ns\/default\/sa\/reviews tls=false :method=GET :authority=\S+ :path=\/reviews\/0$/);
    assert.match(lines[1]!, /^rsp .* :status=200 latency=\d+µs/);
    const reviews = bed.server.requests.filter((q) => q.path.endsWith('/subjectaccessreviews') || q.path.endsWith('/tokenreviews'));
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
    const c = new ControlClient(`127.0.0.1:${bed.control.port}`, fixture('kube', 'anchor.crt'), 'cluster.local');
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
    const dash = spawn(process.execPath, [MESH_BIN, '--platform', 'kubernetes', '--kubeconfig', bed.kubeconfig.jane, 'dashboard', '--port', '0'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...bed.env } });
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
  it('the sidecar sends its spans to mesh-control over the control\'s TLS with its certificate: /v1/traces lists them, and an export without a certificate is refused', async () => {
    const { ControlClient } = await import('../src/api/client.js');
    const c = new ControlClient(`127.0.0.1:${bed.control.port}`, fixture('kube', 'anchor.crt'), 'cluster.local');
    const stop = load();
    try {
      const trace = await waitFor('a trace of the sidecar at the control plane', async () => {
        const r = await c.request<{ traces: { traceId: string; services: string[]; root: string }[] }>('GET', '/v1/traces');
        return r.status === 200 ? r.body.traces.find((t) => t.services.includes('reviews')) : undefined;
      }, 30_000, 250);
      assert.match(trace!.root, /^reviews: inbound GET reviews$/);
      const spans = await c.request<{ spans: { service: string; attributes: Record<string, unknown> }[] }>('GET', `/v1/traces/${trace!.traceId}`);
      assert.equal(spans.body.spans[0]!.attributes['http.target'], '/reviews/0');
      const forged = { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'forged' } }] }, scopeSpans: [{ spans: [{ traceId: 'f'.repeat(32), spanId: 'f'.repeat(16), name: 'x' }] }] }] };
      assert.equal((await c.request('POST', '/v1/traces', forged)).status, 401);
    } finally {
      await stop();
      c.close();
    }
  });

  it('mesh tap keeps streaming across a mesh-control restart: the port-forward reconnects to the new pod, saying so', async () => {
    const stop = load();
    const tap = spawn(process.execPath, [MESH_BIN, '--platform', 'kubernetes', '--kubeconfig', bed.kubeconfig.jane, 'tap', 'deploy/reviews-v1', '--duration', '90s'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...bed.env } });
    let out = '';
    let err = '';
    tap.stdout!.on('data', (c) => (out += c));
    tap.stderr!.on('data', (c) => (err += c));
    const exited = new Promise<number | null>((r) => tap.once('exit', r));
    try {
      await waitFor('tap lines', () => /^req /m.test(out), 30_000, 100);
      const old = bed.controlPod;
      await bed.restartControl();
      const before = out.length;
      await waitFor('the reconnect line', () => err.includes(`reconnected to mesh-system/${bed.controlPod}`), 60_000, 100);
      assert.match(err, new RegExp(`mesh: the port-forward to mesh-system/${old} dropped \\(.*\\); reconnecting \\(1/12\\)`));
      await waitFor('tap lines from the new control plane', () => /^req /m.test(out.slice(before)), 30_000, 100);
    } catch (e) {
      throw new Error(`${(e as Error).message}; mesh tap said: ${err}`);
    } finally {
      tap.kill('SIGTERM');
      await stop();
    }
    assert.equal(await exited, 0, err);
  });
});
