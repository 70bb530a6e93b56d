// mesh route and mesh policy on Kubernetes never overwrite a concurrent change: another writer changes the object
// between the CLI's read and its write (a hook in the fake API server), the write gets a real 409, and the CLI
// re-reads, re-applies its change to the fresh object and writes again, or gives up after 3 attempts.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { FakeApiServer, RecordedRequest } from './support/kube/fake-api-server.js';
import { assertOneLineError, type CliResult } from './support/mesh.js';
import { renderCrds } from '../src/platform/kubernetes/crds.js';
import { seedMeshPod, startCliCluster, type CliCluster } from './support/kube-mesh.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const API = 'mesh.io/v1alpha1';
const ROUTES = '/apis/mesh.io/v1alpha1/namespaces/default/routes';
const POLICIES = '/apis/mesh.io/v1alpha1/namespaces/default/policies';
const JASON = { matches: [{ headers: [{ name: 'end-user', exact: 'jason' }] }], backends: [{ version: 'v2', weight: 100 }] };

describe('mesh route and mesh policy writes on kubernetes under a concurrent writer', () => {
  let server: FakeApiServer;
  let cluster: CliCluster;
  const k = (args: string[]): Promise<CliResult> => cluster.run(args);
  const get = (kind: 'Route' | 'Policy', name: string) => server.store.get({ apiVersion: API, kind, name, namespace: 'default' }) as Obj | undefined;
  const writes = (method: string, path: string) => server.requests.filter((r) => r.method === method && r.path === path).length;
  /** Plays the other writer: runs change before the first n requests matching method and path are handled. */
  const otherWriter = (method: string, path: string, change: (nth: number) => void, n = 1) => {
    let seen = 0;
    server.hooks.beforeRequest = (r: RecordedRequest) => {
      if (r.method === method && r.path === path && seen < n) change(++seen);
    };
  };

  before(async () => {
    cluster = await startCliCluster('mesh-kconflict-');
    server = cluster.server;
    for (const crd of renderCrds()) server.store.create(crd as Obj);
    seedMeshPod(server, 'reviews-v1-abc', { app: 'reviews', version: 'v1' }, { ip: '10.0.0.11' });
    seedMeshPod(server, 'reviews-v2-def', { app: 'reviews', version: 'v2' }, { ip: '10.0.0.12' });
  });
  beforeEach(() => {
    server.hooks.beforeRequest = undefined;
    server.requests.length = 0;
    for (const kind of ['Route', 'Policy'] as const) {
      for (const o of server.store.list(API, kind)) server.store.delete({ apiVersion: API, kind, name: o.metadata.name!, namespace: o.metadata.namespace });
    }
  });
  after(async () => {
    server.hooks.beforeRequest = undefined;
    await cluster?.close();
  });

  it('keeps a rule another writer added between the read and the write, and applies its own change on top', async () => {
    server.store.create({ apiVersion: API, kind: 'Route', metadata: { name: 'reviews', namespace: 'default' }, spec: { rules: [{ backends: [{ version: 'v1', weight: 100 }] }] } });
    otherWriter('PUT', `${ROUTES}/reviews`, () => {
      server.store.patch({ apiVersion: API, kind: 'Route', name: 'reviews' }, { spec: { rules: [JASON, { backends: [{ version: 'v1', weight: 100 }] }] } });
    });
    const r = await k(['route', 'set', 'reviews', 'v1=80', 'v2=20']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /route reviews applied/);
    assert.equal(writes('PUT', `${ROUTES}/reviews`), 2, 'the first write was refused (409) and retried once');
    const rules = get('Route', 'reviews')!.spec.rules as Obj[];
    assert.deepEqual(rules[0], JASON, "the other writer's rule is kept");
    assert.deepEqual(rules[1]!.backends, [{ version: 'v1', weight: 80 }, { version: 'v2', weight: 20 }], 'ours is applied');
    assert.equal(rules.length, 2);
  });

  it('gives up after 3 conflicts with one line naming the route and saying to retry', async () => {
    server.store.create({ apiVersion: API, kind: 'Route', metadata: { name: 'reviews', namespace: 'default' }, spec: { rules: [{ backends: [{ version: 'v1', weight: 100 }] }] } });
    otherWriter('PUT', `${ROUTES}/reviews`, (nth) => {
      server.store.patch({ apiVersion: API, kind: 'Route', name: 'reviews' }, { spec: { rules: [{ backends: [{ version: 'v2', weight: nth }] }] } });
    }, 100);
    const r = await k(['route', 'set', 'reviews', 'v1=80', 'v2=20']);
    assertOneLineError(r, /route default\/reviews was changed by someone else while mesh wrote it \(3 attempts\).*retry the command/);
    assert.equal(writes('PUT', `${ROUTES}/reviews`), 3);
    assert.deepEqual(get('Route', 'reviews')!.spec.rules, [{ backends: [{ version: 'v2', weight: 3 }] }], "the other writer's last change stands");
  });

  it('deletes a route changed meanwhile only after reading it again (a precondition on its resourceVersion)', async () => {
    server.store.create({ apiVersion: API, kind: 'Route', metadata: { name: 'reviews', namespace: 'default' }, spec: { rules: [{ backends: [{ version: 'v1', weight: 100 }] }] } });
    otherWriter('DELETE', `${ROUTES}/reviews`, () => {
      server.store.patch({ apiVersion: API, kind: 'Route', name: 'reviews' }, { spec: { rules: [JASON, { backends: [{ version: 'v1', weight: 100 }] }] } });
    });
    const r = await k(['route', 'clear', 'reviews']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(writes('DELETE', `${ROUTES}/reviews`), 2);
    assert.equal(get('Route', 'reviews'), undefined);
  });

  it('merges its policy rule into a Policy another writer created first (409 AlreadyExists on create)', async () => {
    otherWriter('POST', POLICIES, () => {
      server.store.create({ apiVersion: API, kind: 'Policy', metadata: { name: 'default', namespace: 'default' }, spec: { default: 'deny', rules: [{ from: 'web', to: 'reviews' }] } });
    });
    const r = await k(['policy', 'allow', '--from', 'productpage', '--to', 'reviews']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(writes('POST', POLICIES), 1);
    assert.equal(writes('PUT', `${POLICIES}/default`), 1, 'the retry replaced the Policy it read');
    const p = get('Policy', 'default')!;
    assert.equal(p.spec.default, 'deny', "the other writer's default is kept");
    assert.deepEqual(p.spec.rules, [{ from: 'web', to: 'reviews' }, { from: 'productpage', to: 'reviews' }]);
  });

  it('keeps labels others set on the object it replaces', async () => {
    server.store.create({ apiVersion: API, kind: 'Policy', metadata: { name: 'default', namespace: 'default', labels: { team: 'shop' } }, spec: { default: 'deny', rules: [] } });
    const r = await k(['policy', 'allow', '--from', 'web', '--to', 'reviews']);
    assert.equal(r.code, 0, r.stderr);
    const p = get('Policy', 'default')!;
    assert.equal(p.metadata.labels?.team, 'shop');
    assert.deepEqual(p.spec.rules, [{ from: 'web', to: 'reviews' }]);
  });
});
