// A multi-port pod behind a Service whose port is not its targetPort: peers dial the pod's default inbound port and
// name the Service port in Host (`shop:80`), so the sidecar maps it through its own Service's ports, which the
// control plane (in-process, on the fake API server) publishes from the Service and its EndpointSlice. The proxy is
// the real `mesh proxy --platform kubernetes` with two inbound mappings, as in kube-proxy-multiport.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitFor } from './support/mesh.js';
import { seedMeshPod } from './support/kube-mesh.js';
import { startShopPod, type ShopPod } from './support/kube-shop.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('mesh proxy --platform kubernetes behind a Service whose port is not its targetPort', () => {
  let pod: ShopPod;

  /** The shop Service and the slice its controller would write (slice ports are named like the Service's). */
  const service = (ports: Obj[]): Obj => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'shop', namespace: 'default' }, spec: { selector: { app: 'shop' }, ports } });
  const slice = (ports: Obj[]): Obj => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
    metadata: { name: 'shop-abc', namespace: 'default', labels: { 'kubernetes.io/service-name': 'shop' } },
    ports, endpoints: [{ addresses: ['10.0.2.1'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'shop-v1-a', namespace: 'default' } }],
  });

  before(async () => {
    pod = await startShopPod({
      tmpPrefix: 'mesh-ksvcports-',
      // Service port 80 targets the second app port; port 82 targets a port the pod does not declare.
      seed: (server, appPorts) => {
        seedMeshPod(server, 'shop-v1-a', { app: 'shop', version: 'v1' }, { sa: 'shop', ip: '10.0.2.1' });
        server.store.create(service([{ name: 'web', port: 80, targetPort: appPorts[1] }, { name: 'other', port: 82, targetPort: 7 }]));
        server.store.create(slice([{ name: 'web', port: appPorts[1], protocol: 'TCP' }, { name: 'other', port: 7, protocol: 'TCP' }]));
      },
    });
  });
  after(async () => {
    await pod?.close();
  });

  /** A request over mTLS to the default listener, with the Host a peer would send. */
  const mtlsGet = (path: string, host: string) => pod.mtlsGet(pod.listeners[0]!, path, { host });

  it('sends Host shop:80 to the app port Service port 80 targets, once the snapshot has the Service', async () => {
    // The proxy takes a moment to get its certificate and the snapshot with its Service's ports.
    await waitFor('shop:80 to reach the second app', async () => (await mtlsGet('/ready', 'shop:80').catch(() => ({ body: '' }))).body === 'admin /ready', 10_000, 200)
      .catch((err: Error) => { throw new Error(`${err.message}\n${pod.output()}`); });
    assert.deepEqual(await mtlsGet('/a', 'shop:80'), { status: 200, body: 'admin /a' });
    assert.deepEqual(await mtlsGet('/b', 'shop.default.svc.cluster.local:80'), { status: 200, body: 'admin /b' });
    // A Host without a port is port 80.
    assert.deepEqual(await mtlsGet('/c', 'shop'), { status: 200, body: 'admin /c' });
  });

  it('sends a port that is no Service port, or one whose target the pod does not declare, to the default app port', async () => {
    assert.deepEqual(await mtlsGet('/d', 'shop:81'), { status: 200, body: 'http /d' });
    assert.deepEqual(await mtlsGet('/e', 'shop:82'), { status: 200, body: 'http /e' });
    // A declared app port named directly still goes there.
    assert.deepEqual(await mtlsGet('/f', `shop:${pod.appPorts[1]}`), { status: 200, body: 'admin /f' });
    assert.deepEqual(await mtlsGet('/g', `shop:${pod.appPorts[0]}`), { status: 200, body: 'http /g' });
  });

  it('follows a change of the Service to a named targetPort, resolved through the EndpointSlice', async () => {
    // Port 80 now targets the container port named "main", which the slice resolves to the first app port.
    pod.server.store.put(service([{ name: 'web', port: 80, targetPort: 'main' }]));
    pod.server.store.put(slice([{ name: 'web', port: pod.appPorts[0], protocol: 'TCP' }]));
    await waitFor('shop:80 to reach the first app', async () => (await mtlsGet('/ready', 'shop:80')).body === 'http /ready', 10_000, 100)
      .catch((err: Error) => { throw new Error(`${err.message}\n${pod.output()}`); });
    assert.deepEqual(await mtlsGet('/h', 'shop:80'), { status: 200, body: 'http /h' });
  });
});
