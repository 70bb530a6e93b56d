// mesh route and mesh policy with --platform kubernetes: the real CLI writes Route and Policy custom resources in the
// fake API server (what kubectl get would show), knows versions from pods' labels, and refuses bad input unchanged.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { FakeApiServer } from './support/kube/fake-api-server.js';
import { ROOT, type CliResult } from './support/mesh.js';
import { renderCrds } from '../src/platform/kubernetes/crds.js';
import { seedMeshPod, startCliCluster, type CliCluster } from './support/kube-mesh.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('mesh route and mesh policy on kubernetes', () => {
  let server: FakeApiServer;
  let dir: string;
  let cluster: CliCluster;
  const k = (args: string[]): Promise<CliResult> => cluster.run(args);
  const route = (name: string, namespace = 'default') => server.store.get({ apiVersion: 'mesh.io/v1alpha1', kind: 'Route', name, namespace }) as Obj | undefined;

  before(async () => {
    cluster = await startCliCluster('mesh-kroute-');
    ({ server, dir } = cluster);
    for (const crd of renderCrds()) server.store.create(crd as Obj);
    seedMeshPod(server, 'reviews-v1-abc', { app: 'reviews', version: 'v1' }, { ip: '10.0.0.11' });
    seedMeshPod(server, 'reviews-v2-def', { app: 'reviews', version: 'v2' }, { ip: '10.0.0.12' });
  });
  after(async () => {
    await cluster?.close();
  });

  it('creates the Route custom resource that kubectl get shows', async () => {
    const r = await k(['route', 'set', 'reviews', 'v1=80', 'v2=20']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr + r.stdout, /kubernetes/);
    assert.match(r.stdout, /route reviews applied/);
    const cr = route('reviews');
    assert.ok(cr, 'the Route exists in the API server');
    assert.equal(cr.apiVersion, 'mesh.io/v1alpha1');
    assert.deepEqual(cr.spec.rules[0].backends, [{ version: 'v1', weight: 80 }, { version: 'v2', weight: 20 }]);
    assert.equal(cr.metadata.managedFields?.[0]?.manager, 'mesh');
  });

  it('reads it back with get and list', async () => {
    const g = await k(['route', 'get', 'reviews', '-o', 'json']);
    assert.equal(g.code, 0, g.stderr);
    assert.equal(JSON.parse(g.stdout).spec.rules[0].backends[1].weight, 20);
    const l = await k(['route', 'list']);
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stdout, /reviews/);
  });

  it('refuses invalid input and leaves the resource unchanged', async () => {
    const before = route('reviews')!.metadata.resourceVersion;
    const bad: [string[], RegExp][] = [
      [['route', 'set', 'reviews', 'v1=0', 'v2=0'], /the weights are all zero/],
      [['route', 'set', 'reviews', 'v1=1.5'], /weight '1.5' of v1 is not an integer/],
      [['route', 'set', 'nosuch', 'v1'], /service nosuch has no live endpoint in namespace default \(known: reviews\)/],
    ];
    for (const [args, error] of bad) {
      const r = await k(args);
      assert.notEqual(r.code, 0, `${args.join(' ')} should fail`);
      assert.match(r.stderr, error);
    }
    const warned = await k(['route', 'set', 'reviews', 'v1=80', 'v9=20', '--timeout', '5x']);
    assert.match(warned.stderr, /timeout '5x' is not a duration/);
    assert.equal(route('reviews')!.metadata.resourceVersion, before);
    assert.equal(route('nosuch'), undefined);
  });

  it('applies YAML and clears the route (the resource is deleted)', async () => {
    const file = join(dir, 'route.yaml');
    writeFileSync(file, 'apiVersion: mesh.io/v1alpha1\nkind: Route\nmetadata:\n  name: reviews\nspec:\n  rules:\n  - backends:\n    - version: v2\n      weight: 100\n');
    const a = await k(['route', 'apply', '-f', file]);
    assert.equal(a.code, 0, a.stderr);
    assert.deepEqual(route('reviews')!.spec.rules[0].backends.map((b: Obj) => b.version), ['v2']);
    const c = await k(['route', 'clear', 'reviews']);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(route('reviews'), undefined);
  });

  it('writes Policy resources with mesh policy', async () => {
    const d = await k(['policy', 'default', 'deny']);
    assert.equal(d.code, 0, d.stderr);
    const a = await k(['policy', 'allow', '--from', 'productpage', '--to', 'reviews']);
    assert.equal(a.code, 0, a.stderr);
    const policies = server.store.list('mesh.io/v1alpha1', 'Policy', 'default') as Obj[];
    assert.equal(policies.length, 1);
    assert.equal(policies[0]!.spec.default, 'deny');
    assert.deepEqual(policies[0]!.spec.rules, [{ from: 'productpage', to: 'reviews' }]);
    const bad = await k(['policy', 'allow', '--from', 'productpage', '--to', 'reviews', '--path-prefix', 'no-slash']);
    assert.notEqual(bad.code, 0);
    assert.equal((server.store.list('mesh.io/v1alpha1', 'Policy', 'default') as Obj[])[0]!.metadata.resourceVersion, policies[0]!.metadata.resourceVersion);
    const l = await k(['policy', 'list', '-o', 'json']);
    assert.equal(JSON.parse(l.stdout).policies.length, 1);
  });

  it('mesh stat reaches the control plane through the API server service proxy', async () => {
    const none = await k(['stat', 'deploy']);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /no mesh control plane in namespace mesh-system/);
    const noServer = await k(['version']);
    assert.equal(noServer.code, 0, noServer.stderr);
    assert.match(noServer.stdout, /Server version: unavailable \(no mesh control plane in namespace mesh-system/);
    const seen: string[] = [];
    const backend = createServer((req, res) => {
      seen.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'application/json' });
      if (req.url === '/v1/version') return res.end(JSON.stringify({ version: '9.9.9', trustDomain: 'cluster.local' }));
      res.end(JSON.stringify({ windowMs: 60_000, source: 'control plane', hints: [], rows: [{
        namespace: 'default', kind: 'deployment', name: 'reviews-v1', meshed: '1/1', success: 1, rps: 2, latency_ms_p50: 1, latency_ms_p95: 3,
        latency_ms_p99: 9, tcp_open_connections: 3, tcp_read_bytes_rate: 0, tcp_write_bytes_rate: 0,
      }] }));
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    try {
      server.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'mesh-system' } });
      server.store.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'mesh-control', namespace: 'mesh-system' }, spec: { ports: [{ name: 'api', port: 8443 }] } });
      server.serviceProxy.set('mesh-system/mesh-control:8443', `http://127.0.0.1:${(backend.address() as AddressInfo).port}`);
      const r = await k(['stat', 'deploy', '-n', 'default']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /reviews-v1\s+1\/1\s+100\.00%\s+2\.0rps/);
      assert.match(seen[0]!, /^\/v1\/stat\?/);
      assert.ok(server.requests.some((q) => q.path.startsWith('/api/v1/namespaces/mesh-system/services/https:mesh-control:8443/proxy/v1/stat')));
      const v = await k(['version', '-o', 'json']);
      assert.equal(v.code, 0, v.stderr);
      assert.deepEqual(JSON.parse(v.stdout), { client: JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version, server: '9.9.9' });
    } finally {
      backend.close();
    }
  });

  it('says how to install the CRDs when the cluster does not serve Routes', async () => {
    server.store.delete({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name: 'routes.mesh.io' });
    const r = await k(['route', 'list']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /error: the cluster does not serve routes\.mesh\.io \(context fake\) — install them: '(npx )?mesh install --crds --apply --platform kubernetes'/);
  });
});
