// The fake Kubernetes API server through @kubernetes/client-node: watches (history, 410 Gone, resume), informers,
// and the service proxy.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { CoreV1Api, makeInformer, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { startFakeApiServer, type FakeApiServer } from './support/kube/fake-api-server.js';
import { expectStatus, kubeConfigFor, RecordedWatch } from './support/kube/testing.js';
import { waitFor } from './support/mesh.js';

const NS = 'w';
const PATH = `/api/v1/namespaces/${NS}/configmaps`;

describe('fake kube API server: watch', () => {
  let server: FakeApiServer;
  let kc: KubeConfig;
  let core: CoreV1Api;
  const watches: RecordedWatch[] = [];
  const watch = async (query: Record<string, string | number | boolean> = {}, path = PATH) => {
    const w = await RecordedWatch.start(kc, path, query);
    watches.push(w);
    return w;
  };
  const cm = (name: string, labels: Record<string, string> = {}): V1ConfigMap => ({ metadata: { name, labels }, data: { v: '1' } });
  const listRv = async () => (await core.listNamespacedConfigMap({ namespace: NS })).metadata?.resourceVersion ?? '';

  before(async () => {
    server = await startFakeApiServer({ namespaceDefaults: false });
    kc = kubeConfigFor(server);
    core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
  });
  afterEach(() => {
    watches.splice(0).forEach((w) => w.stop());
  });
  after(() => server.close());

  it('streams ADDED, MODIFIED and DELETED in order from a list resourceVersion', async () => {
    const w = await watch({ resourceVersion: await listRv() });
    const created = await core.createNamespacedConfigMap({ namespace: NS, body: cm('order') });
    await core.patchNamespacedConfigMap({ name: 'order', namespace: NS, body: [{ op: 'replace', path: '/data/v', value: '2' }] });
    await core.deleteNamespacedConfigMap({ name: 'order', namespace: NS });
    const events = await w.waitForEvents(3);
    assert.deepEqual(events.map((e) => `${e.type} ${e.name}`), ['ADDED order', 'MODIFIED order', 'DELETED order']);
    assert.equal(events[0].resourceVersion, created.metadata?.resourceVersion);
    const rvs = events.map((e) => Number(e.resourceVersion));
    assert.ok(rvs[0] < rvs[1] && rvs[1] < rvs[2], `increasing resourceVersions: ${rvs.join(',')}`);
    await core.deleteCollectionNamespacedConfigMap({ namespace: NS });
  });

  it('replays history after a resourceVersion and sends synthetic ADDED events without one', async () => {
    const rv = await listRv();
    await core.createNamespacedConfigMap({ namespace: NS, body: cm('h1') });
    await core.createNamespacedConfigMap({ namespace: NS, body: cm('h2') });
    const replay = await watch({ resourceVersion: rv });
    assert.deepEqual((await replay.waitForEvents(2)).map((e) => `${e.type} ${e.name}`), ['ADDED h1', 'ADDED h2']);
    const fresh = await watch();
    assert.deepEqual((await fresh.waitForEvents(2)).map((e) => `${e.type} ${e.name}`), ['ADDED h1', 'ADDED h2']);
    await core.deleteCollectionNamespacedConfigMap({ namespace: NS });
  });

  it('filters events by label selector, turning label changes into ADDED/DELETED', async () => {
    const w = await watch({ resourceVersion: await listRv(), labelSelector: 'mesh=on' });
    await core.createNamespacedConfigMap({ namespace: NS, body: cm('other') });
    await core.createNamespacedConfigMap({ namespace: NS, body: cm('sel', { mesh: 'off' }) });
    await core.patchNamespacedConfigMap({ name: 'sel', namespace: NS, body: [{ op: 'replace', path: '/metadata/labels/mesh', value: 'on' }] });
    await core.patchNamespacedConfigMap({ name: 'sel', namespace: NS, body: [{ op: 'add', path: '/data/x', value: 'y' }] });
    await core.patchNamespacedConfigMap({ name: 'sel', namespace: NS, body: [{ op: 'remove', path: '/metadata/labels/mesh' }] });
    const events = await w.waitForEvents(3);
    assert.deepEqual(events.map((e) => `${e.type} ${e.name}`), ['ADDED sel', 'MODIFIED sel', 'DELETED sel']);
    await core.deleteCollectionNamespacedConfigMap({ namespace: NS });
  });

  it('answers an expired resourceVersion with an ERROR 410 Gone event and ends the stream', async () => {
    const rv = await listRv();
    await core.createNamespacedConfigMap({ namespace: NS, body: cm('old') });
    server.compactHistory();
    const w = await watch({ resourceVersion: rv });
    const [event] = await w.waitForEvents(1);
    assert.equal(event.type, 'ERROR');
    assert.equal(event.object.code, 410);
    assert.equal(event.object.reason, 'Expired');
    assert.equal(await w.waitForDone(), null);
    // The current resourceVersion is still watchable.
    const current = await watch({ resourceVersion: await listRv() });
    await core.deleteNamespacedConfigMap({ name: 'old', namespace: NS });
    assert.equal((await current.waitForEvents(1))[0].type, 'DELETED');
  });

  it('lets a client resume after the server cuts its watches', async () => {
    const w = await watch({ resourceVersion: await listRv() });
    await core.createNamespacedConfigMap({ namespace: NS, body: cm('before-cut') });
    await w.waitForEvents(1);
    server.cutWatches();
    assert.equal(await w.waitForDone(), null);
    assert.equal(server.openWatches, 0);
    await core.createNamespacedConfigMap({ namespace: NS, body: cm('during-gap') });
    const resumed = await watch({ resourceVersion: w.events[0].resourceVersion });
    assert.deepEqual((await resumed.waitForEvents(1)).map((e) => `${e.type} ${e.name}`), ['ADDED during-gap']);
    const abrupt = await watch({ resourceVersion: await listRv() });
    server.cutWatches({ abrupt: true });
    assert.ok(await abrupt.waitForDone(), 'an abrupt cut reaches done with an error');
    await core.deleteCollectionNamespacedConfigMap({ namespace: NS });
  });

  it('sends bookmarks when allowed and ends at timeoutSeconds', async () => {
    const w = await watch({ resourceVersion: await listRv(), allowWatchBookmarks: true, timeoutSeconds: 1 });
    await waitFor('the watch to open', () => server.openWatches > 0, 5000, 5);
    server.sendBookmarks();
    const [bookmark] = await w.waitForEvents(1);
    assert.equal(bookmark.type, 'BOOKMARK');
    assert.equal(bookmark.resourceVersion, await listRv());
    assert.equal(await w.waitForDone(5000), null);
  });

  it('keeps an informer in sync across a watch cut with compacted history (relist after 410)', async () => {
    const informer = makeInformer(kc, PATH, () => core.listNamespacedConfigMap({ namespace: NS }));
    const seen = new Set<string>();
    informer.on('add', (o) => seen.add(o.metadata?.name ?? ''));
    await informer.start();
    try {
      await core.createNamespacedConfigMap({ namespace: NS, body: cm('inf-1') });
      await waitFor('the informer to see inf-1', () => seen.has('inf-1'), 5000, 5);
      // A write elsewhere moves the global resourceVersion past the informer's, so compaction expires it.
      await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'elsewhere' } } });
      const lists = () => server.requests.filter((r) => r.method === 'GET' && r.path === PATH && !r.query.watch).length;
      const listsBefore = lists();
      server.compactHistory();
      server.cutWatches();
      await core.createNamespacedConfigMap({ namespace: NS, body: cm('inf-2') });
      await waitFor('the informer to relist and see inf-2', () => seen.has('inf-2'), 5000, 5);
      assert.equal(lists(), listsBefore + 1, 'the informer relisted after 410 Gone');
      assert.deepEqual(informer.list(NS).map((o) => o.metadata?.name).sort(), ['inf-1', 'inf-2']);
    } finally {
      await informer.stop();
    }
    await core.deleteCollectionNamespacedConfigMap({ namespace: NS });
  });

  it('ends open watches when the server closes', async () => {
    const other = await startFakeApiServer({ seedDefaults: false });
    const w = await RecordedWatch.start(kubeConfigFor(other), '/api/v1/namespaces');
    await waitFor('the watch to open', () => other.openWatches === 1, 5000, 5);
    await other.close();
    assert.equal(await w.waitForDone(), null);
  });
});

describe('fake kube API server: service proxy', () => {
  let server: FakeApiServer;
  let backend: Server;
  let core: CoreV1Api;

  before(async () => {
    backend = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end(`${req.method} ${req.url} ${body}`.trim());
      });
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const port = (backend.address() as AddressInfo).port;
    server = await startFakeApiServer({ serviceProxy: { 'mesh/control:8080': `http://127.0.0.1:${port}` } });
    core = kubeConfigFor(server).makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'mesh' } } });
    await core.createNamespacedService({ namespace: 'mesh', body: { metadata: { name: 'control' }, spec: { ports: [{ name: 'http', port: 8080 }] } } });
  });
  after(async () => {
    await server.close();
    await new Promise((resolve) => backend.close(resolve));
  });

  it('forwards services/<name>:<port>/proxy/<path> to the registered backend', async () => {
    const got = await core.connectGetNamespacedServiceProxyWithPath({ name: 'control:8080', namespace: 'mesh', path: 'api/stats' });
    assert.equal(got, 'GET /api/stats');
    const viaDefaultPort = await core.connectGetNamespacedServiceProxyWithPath({ name: 'control', namespace: 'mesh', path: 'healthz' });
    assert.equal(viaDefaultPort, 'GET /healthz');
    const posted = await core.connectPostNamespacedServiceProxyWithPath({ name: 'control:8080', namespace: 'mesh', path: 'reload' });
    assert.match(String(posted), /^POST \/reload/);
  });

  it('answers 404 for a missing service and 503 when nothing serves it', async () => {
    await expectStatus(core.connectGetNamespacedServiceProxyWithPath({ name: 'nope:80', namespace: 'mesh', path: 'x' }), 404, 'NotFound');
    await core.createNamespacedService({ namespace: 'mesh', body: { metadata: { name: 'idle' }, spec: { ports: [{ port: 80 }] } } });
    const unavailable = await expectStatus(core.connectGetNamespacedServiceProxyWithPath({ name: 'idle:80', namespace: 'mesh', path: 'x' }), 503, 'ServiceUnavailable');
    assert.equal(unavailable.message, 'no endpoints available for service "idle"');
  });
});
