// A multi-port pod behind a Service whose port is not its targetPort: peers dial the pod's default inbound port and
// name the Service port in Host (`shop:80`), so the sidecar maps it through its own Service's ports, which the
// control plane (in-process, on the fake API server) publishes from the Service and its EndpointSlice. The proxy is
// the real `mesh proxy --platform kubernetes` with two inbound mappings, as in kube-proxy-multiport.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { startFakeApiServer, type FakeApiServer } from './support/kube/fake-api-server.js';
import { freePort, MESH_BIN, waitFor } from './support/mesh.js';
import { seedMeshPod } from './support/kube-mesh.js';
import { fixture } from './support/golden.js';
import { renderControlPlane } from '../src/platform/kubernetes/manifests.js';
import { KubeClient } from '../src/platform/kubernetes/client.js';
import { runKubeControl, type RunningKubeControl } from '../src/platform/kubernetes/control.js';
import { TRUST_ROOTS_CONFIGMAP } from '../src/platform/kubernetes/names.js';
import { createIssuer, createTrustAnchor, generateKey, Issuer, type CertAndKey } from '../src/identity/ca.js';
import { formatIdentity, verifyPeer } from '../src/identity/spiffe.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const TD = 'cluster.local';
const SHOP_ID = formatIdentity({ trustDomain: TD, namespace: 'default', serviceAccount: 'shop' });
const CLIENT_ID = formatIdentity({ trustDomain: TD, namespace: 'default', serviceAccount: 'web' });

describe('mesh proxy --platform kubernetes behind a Service whose port is not its targetPort', () => {
  let server: FakeApiServer;
  let control: RunningKubeControl;
  let dir: string;
  let anchor: CertAndKey;
  let client: { cert: string; key: string };
  const apps: http.Server[] = [];
  const appPorts: number[] = [];
  let proxy: ChildProcess | undefined;
  let out = '';
  let listener = 0;

  /** The shop Service and the slice its controller would write (slice ports are named like the Service's). */
  const service = (ports: Obj[]): Obj => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'shop', namespace: 'default' }, spec: { selector: { app: 'shop' }, ports } });
  const slice = (ports: Obj[]): Obj => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
    metadata: { name: 'shop-abc', namespace: 'default', labels: { 'kubernetes.io/service-name': 'shop' } },
    ports, endpoints: [{ addresses: ['10.0.2.1'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'shop-v1-a', namespace: 'default' } }],
  });

  before(async () => {
    anchor = await createTrustAnchor(TD);
    const issuer = await createIssuer(TD, anchor);
    server = await startFakeApiServer({ tokenReviews: { 'projected-shop': { username: 'system:serviceaccount:default:shop', audiences: ['mesh.io'] } } });
    const webhook = { caPem: fixture('kube', 'webhook-ca.crt'), certPem: fixture('kube', 'webhook.crt'), keyPem: fixture('kube', 'webhook.key') };
    const identity = { trustAnchorsPem: anchor.certPem, issuerCertPem: issuer.certPem, issuerKeyPem: issuer.keyPem };
    for (const o of renderControlPlane({ version: 'test', image: 'mesh:test', trustDomain: TD, certLifetime: '24h', identity, webhook })) {
      if (o.kind === 'Namespace' || o.kind === 'Secret' || o.metadata.name === TRUST_ROOTS_CONFIGMAP) server.store.create(o as Obj);
    }
    // Two app servers in the pod, each saying which it is.
    for (const name of ['http', 'admin']) {
      const app = http.createServer((req, res) => res.end(`${name} ${req.url}`));
      await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
      apps.push(app);
      appPorts.push((app.address() as AddressInfo).port);
    }
    // Service port 80 targets the second app port; port 82 targets a port the pod does not declare.
    seedMeshPod(server, 'shop-v1-a', { app: 'shop', version: 'v1' }, { sa: 'shop', ip: '10.0.2.1' });
    server.store.create(service([{ name: 'web', port: 80, targetPort: appPorts[1] }, { name: 'other', port: 82, targetPort: 7 }]));
    server.store.create(slice([{ name: 'web', port: appPorts[1], protocol: 'TCP' }, { name: 'other', port: 7, protocol: 'TCP' }]));
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfigYaml);
    control = await runKubeControl(await KubeClient.fromConfig(kc), { port: 0, webhookPort: 0, address: '127.0.0.1', env: { MESH_TRUST_DOMAIN: TD }, log: () => {} });
    dir = mkdtempSync(join(tmpdir(), 'mesh-ksvcports-'));
    writeFileSync(join(dir, 'token'), 'projected-shop\n');
    // A calling workload's certificate, as its own proxy would hold it.
    const kp = await generateKey();
    client = { cert: new Issuer(issuer).issueLeaf({ uri: CLIENT_ID, publicKeyPem: kp.publicKeyPem, lifetimeMs: 3600_000 }) + issuer.certPem, key: kp.keyPem };
    const listeners = [await freePort(), await freePort()];
    listener = listeners[0]!;
    proxy = spawn(process.execPath, [MESH_BIN, '--platform', 'kubernetes', 'proxy', '--inbound-port', String(listener), '--outbound-port', '0', '--admin-port', '0'], {
      env: {
        ...process.env,
        MESH_NAMESPACE: 'default', MESH_POD_NAME: 'shop-v1-a', MESH_SERVICE_ACCOUNT: 'shop', MESH_VERSION: 'v1',
        MESH_TRUST_DOMAIN: TD, MESH_CONTROL_ADDRESS: `127.0.0.1:${control.port}`, MESH_IDENTITY_TOKEN_FILE: join(dir, 'token'),
        MESH_TRUST_ANCHORS: anchor.certPem, MESH_APP_PORT: '',
        MESH_INBOUND_PORTS: `${listeners[0]}=${appPorts[0]},${listeners[1]}=${appPorts[1]}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proxy.stdout!.on('data', (c) => (out += c));
    proxy.stderr!.on('data', (c) => (out += c));
    await waitFor('the proxy to report its listeners', () => out.split('\n').some((l) => l.startsWith('{')), 30_000, 100)
      .catch((err: Error) => { throw new Error(`${err.message}\n${out}`); });
  });
  after(async () => {
    if (proxy && proxy.exitCode === null) {
      const exited = new Promise((r) => proxy!.once('exit', r));
      proxy.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (proxy.exitCode === null) proxy.kill('SIGKILL');
    }
    for (const a of apps) a.close();
    await control?.close();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A request over mTLS to the default listener, checking the server is the shop's proxy by its SPIFFE identity. */
  const mtlsGet = (path: string, host: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = https.get({
      host: '127.0.0.1', port: listener, path, headers: { host }, agent: false, ca: anchor.certPem, cert: client.cert, key: client.key, servername: 'shop',
      checkServerIdentity: (_h, cert) => {
        const id = formatIdentity(verifyPeer(new X509Certificate(cert.raw), TD));
        return id === SHOP_ID ? undefined : new Error(`the server is ${id}`);
      },
    }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });

  it('sends Host shop:80 to the app port Service port 80 targets, once the snapshot has the Service', async () => {
    // The proxy takes a moment to get its certificate and the snapshot with its Service's ports.
    await waitFor('shop:80 to reach the second app', async () => (await mtlsGet('/ready', 'shop:80').catch(() => ({ body: '' }))).body === 'admin /ready', 10_000, 200)
      .catch((err: Error) => { throw new Error(`${err.message}\n${out}`); });
    assert.deepEqual(await mtlsGet('/a', 'shop:80'), { status: 200, body: 'admin /a' });
    assert.deepEqual(await mtlsGet('/b', 'shop.default.svc.cluster.local:80'), { status: 200, body: 'admin /b' });
    // A Host without a port is port 80.
    assert.deepEqual(await mtlsGet('/c', 'shop'), { status: 200, body: 'admin /c' });
  });

  it('sends a port that is no Service port, or one whose target the pod does not declare, to the default app port', async () => {
    assert.deepEqual(await mtlsGet('/d', 'shop:81'), { status: 200, body: 'http /d' });
    assert.deepEqual(await mtlsGet('/e', 'shop:82'), { status: 200, body: 'http /e' });
    // A declared app port named directly still goes there.
    assert.deepEqual(await mtlsGet('/f', `shop:${appPorts[1]}`), { status: 200, body: 'admin /f' });
    assert.deepEqual(await mtlsGet('/g', `shop:${appPorts[0]}`), { status: 200, body: 'http /g' });
  });

  it('follows a change of the Service to a named targetPort, resolved through the EndpointSlice', async () => {
    // Port 80 now targets the container port named "main", which the slice resolves to the first app port.
    server.store.put(service([{ name: 'web', port: 80, targetPort: 'main' }]));
    server.store.put(slice([{ name: 'web', port: appPorts[0], protocol: 'TCP' }]));
    await waitFor('shop:80 to reach the first app', async () => (await mtlsGet('/ready', 'shop:80')).body === 'http /ready', 10_000, 100)
      .catch((err: Error) => { throw new Error(`${err.message}\n${out}`); });
    assert.deepEqual(await mtlsGet('/h', 'shop:80'), { status: 200, body: 'http /h' });
  });
});
