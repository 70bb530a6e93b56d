// A multi-port pod's sidecar: `mesh proxy --platform kubernetes` with MESH_INBOUND_PORTS (as inject writes it) opens
// one inbound listener per app port, and each forwards to its own app port, not just the first. The control plane
// (in-process, on the fake API server) issues the proxy's certificate for its projected token. The same mapping is
// also run in-process without the pod's plaintext sniffing, to show each listener forwarding over mTLS (see TODO).
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
import { assertOneLineError, freePort, MESH_BIN, mesh, waitFor } from './support/mesh.js';
import { fixture } from './support/golden.js';
import { renderControlPlane } from '../src/platform/kubernetes/manifests.js';
import { startProxy, type RunningProxy } from '../src/proxy/runtime.js';
import { KubeClient } from '../src/platform/kubernetes/client.js';
import { runKubeControl, type RunningKubeControl } from '../src/platform/kubernetes/control.js';
import { TRUST_ROOTS_CONFIGMAP } from '../src/platform/kubernetes/names.js';
import { createIssuer, createTrustAnchor, generateKey, Issuer, type CertAndKey } from '../src/identity/ca.js';
import { formatIdentity, verifyPeer } from '../src/identity/spiffe.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const TD = 'cluster.local';
const SHOP_ID = formatIdentity({ trustDomain: TD, namespace: 'default', serviceAccount: 'shop' });
const CLIENT_ID = formatIdentity({ trustDomain: TD, namespace: 'default', serviceAccount: 'web' });

describe('mesh proxy --platform kubernetes in a multi-port pod', () => {
  let server: FakeApiServer;
  let control: RunningKubeControl;
  let dir: string;
  let anchor: CertAndKey;
  let client: { cert: string; key: string };
  const apps: http.Server[] = [];
  const appPorts: number[] = [];
  const seen: { app: string; clientId?: string }[] = [];
  let proxy: ChildProcess | undefined;
  let out = '';
  let listeners: number[] = [];

  /** The env inject gives the proxy container, with the control plane and app ports of this test. */
  const proxyEnv = (extra: Record<string, string>): NodeJS.ProcessEnv => ({
    MESH_NAMESPACE: 'default', MESH_POD_NAME: 'shop-v1-a', MESH_SERVICE_ACCOUNT: 'shop', MESH_VERSION: 'v1',
    MESH_TRUST_DOMAIN: TD, MESH_CONTROL_ADDRESS: `127.0.0.1:${control.port}`, MESH_IDENTITY_TOKEN_FILE: join(dir, 'token'),
    MESH_TRUST_ANCHORS: anchor.certPem, MESH_APP_PORT: '', ...extra,
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
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfigYaml);
    control = await runKubeControl(await KubeClient.fromConfig(kc), { port: 0, webhookPort: 0, address: '127.0.0.1', env: { MESH_TRUST_DOMAIN: TD }, log: () => {} });
    dir = mkdtempSync(join(tmpdir(), 'mesh-kmulti-'));
    writeFileSync(join(dir, 'token'), 'projected-shop\n');
    // A calling workload's certificate, as its own proxy would hold it.
    const kp = await generateKey();
    client = { cert: new Issuer(issuer).issueLeaf({ uri: CLIENT_ID, publicKeyPem: kp.publicKeyPem, lifetimeMs: 3600_000 }) + issuer.certPem, key: kp.keyPem };
    // Two app servers in the pod: HTTP and "admin", each saying which it is.
    for (const name of ['http', 'admin']) {
      const app = http.createServer((req, res) => {
        seen.push({ app: name, clientId: req.headers['mesh-client-id'] as string | undefined });
        res.end(`${name} ${req.url}`);
      });
      await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
      apps.push(app);
      appPorts.push((app.address() as AddressInfo).port);
    }
    listeners = [await freePort(), await freePort()];
    proxy = spawn(process.execPath, [MESH_BIN, '--platform', 'kubernetes', 'proxy', '--inbound-port', String(listeners[0]), '--outbound-port', '0', '--admin-port', '0'], {
      env: { ...process.env, ...proxyEnv({ MESH_INBOUND_PORTS: `${listeners[0]}=${appPorts[0]},${listeners[1]}=${appPorts[1]}` }) },
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
    rmSync(dir, { recursive: true, force: true });
  });

  /** A request over mTLS to a listener, checking the server is the shop's proxy by its SPIFFE identity. */
  const mtlsGet = (port: number, path: string, headers: Record<string, string> = {}) => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = https.get({
      host: '127.0.0.1', port, path, headers, agent: false, ca: anchor.certPem, cert: client.cert, key: client.key, servername: 'shop',
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

  it('reports one inbound listener per mapping, each with its app port', () => {
    const line = JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!) as { inboundPorts: { address: string; appPort: number }[] };
    assert.deepEqual(line.inboundPorts.map((p) => [Number(p.address.split(':').pop()), p.appPort]), [[listeners[0], appPorts[0]], [listeners[1], appPorts[1]]]);
  });

  // The inbound port of a pod also takes plaintext: it reads the first bytes to tell TLS from HTTP, so this also
  // checks that the TLS server still sees the ClientHello those bytes were.
  it('forwards each listener to its own app port over mTLS, with the caller verified', async () => {
    // The proxy takes a moment to get its certificate from the control plane.
    await waitFor('the proxy to serve mTLS', async () => (await mtlsGet(listeners[0]!, '/ready').catch(() => ({ status: 0 }))).status === 200, 8_000, 200)
      .catch((err: Error) => { throw new Error(`${err.message}\n${out}`); });
    seen.length = 0;
    assert.deepEqual(await mtlsGet(listeners[0]!, '/a'), { status: 200, body: 'http /a' });
    assert.deepEqual(await mtlsGet(listeners[1]!, '/b'), { status: 200, body: 'admin /b' });
    assert.deepEqual(await mtlsGet(listeners[1]!, '/c'), { status: 200, body: 'admin /c' });
    assert.deepEqual(seen, [{ app: 'http', clientId: CLIENT_ID }, { app: 'admin', clientId: CLIENT_ID }, { app: 'admin', clientId: CLIENT_ID }]);
  });

  it('sends a meshed request on the default listener to the declared port its Host names', async () => {
    // Peers dial the default inbound port whatever the service port: the Host says which app port.
    assert.deepEqual(await mtlsGet(listeners[0]!, '/d', { host: `shop:${appPorts[1]}` }), { status: 200, body: 'admin /d' });
    assert.deepEqual(await mtlsGet(listeners[0]!, '/e', { host: `shop:${appPorts[0]}` }), { status: 200, body: 'http /e' });
    // A port the pod does not declare goes to the default app port, never anywhere else.
    assert.deepEqual(await mtlsGet(listeners[0]!, '/f', { host: 'shop:1' }), { status: 200, body: 'http /f' });
  });

  it('forwards plaintext (a kubelet probe, an unmeshed client) on each listener to its own app port', async () => {
    const plainGet = (port: number, path: string) => new Promise<{ status: number; body: string }>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      }).on('error', reject).setTimeout(10_000, function (this: http.ClientRequest) { this.destroy(new Error('timed out')); });
    });
    seen.length = 0;
    assert.deepEqual(await plainGet(listeners[0]!, '/healthz'), { status: 200, body: 'http /healthz' });
    assert.deepEqual(await plainGet(listeners[1]!, '/healthz'), { status: 200, body: 'admin /healthz' });
    assert.deepEqual(seen, [{ app: 'http', clientId: undefined }, { app: 'admin', clientId: undefined }], 'no identity without TLS');
  });

  describe('the same mapping in-process, TLS only', () => {
    let running: RunningProxy;
    before(async () => {
      running = await startProxy({
        mode: 'sidecar', namespace: 'default', service: 'shop', version: 'v1', instance: 'shop-v1-b', trustDomain: TD, trustAnchorsPem: anchor.certPem,
        controlAddress: `127.0.0.1:${control.port}`, joinToken: () => 'projected-shop', listenHost: '127.0.0.1',
        appPort: appPorts[0], inboundPort: 0, extraInbound: [{ port: 0, appPort: appPorts[1]! }], outboundPort: 0, adminPort: 0,
      });
    });
    after(async () => {
      await running?.close();
    });

    it('forwards each listener to its own app port over mTLS, with the caller verified', async () => {
      const first = Number(running.inbound!.split(':').pop());
      assert.equal(running.extraInbound.length, 1);
      assert.equal(running.extraInbound[0]!.appPort, appPorts[1]);
      const second = Number(running.extraInbound[0]!.address.split(':').pop());
      seen.length = 0;
      assert.deepEqual(await mtlsGet(first, '/a'), { status: 200, body: 'http /a' });
      assert.deepEqual(await mtlsGet(second, '/b'), { status: 200, body: 'admin /b' });
      assert.deepEqual(await mtlsGet(first, '/c'), { status: 200, body: 'http /c' });
      assert.deepEqual(seen, [{ app: 'http', clientId: CLIENT_ID }, { app: 'admin', clientId: CLIENT_ID }, { app: 'http', clientId: CLIENT_ID }]);
    });
  });

  it('refuses a malformed MESH_INBOUND_PORTS, or one on its own ports, with one line and a hint', async () => {
    const run = (value: string, args: string[] = []) => mesh(['--platform', 'kubernetes', 'proxy', '--inbound-port', '4143', '--outbound-port', '0', '--admin-port', '0', ...args],
      { env: proxyEnv({ MESH_INBOUND_PORTS: value }), timeoutMs: 30_000 });
    assertOneLineError(await run('4143=8080,oops'), /MESH_INBOUND_PORTS entry 'oops' is not LISTENER_PORT=APP_PORT — re-inject the pod/);
    const admin = await freePort();
    assertOneLineError(await run(`4143=8080,${admin}=9090`, ['--admin-port', String(admin)]), new RegExp(`listener on port ${admin}, which the proxy uses itself`));
  });
});
