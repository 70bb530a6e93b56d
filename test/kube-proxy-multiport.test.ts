// A multi-port pod's sidecar: `mesh proxy --platform kubernetes` with MESH_INBOUND_PORTS (as inject writes it) opens
// one inbound listener per app port, and each forwards to its own app port, not just the first. The control plane
// (in-process, on the fake API server) issues the proxy's certificate for its projected token. The same mapping is
// also run in-process through startProxy's extraInbound.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { get } from './support/http.js';
import { assertOneLineError, freePort, mesh, waitFor } from './support/mesh.js';
import { CLIENT_ID, startShopPod, TD, type ShopPod } from './support/kube-shop.js';
import { startProxy, type RunningProxy } from '../src/proxy/runtime.js';

describe('mesh proxy --platform kubernetes in a multi-port pod', () => {
  let pod: ShopPod;
  before(async () => {
    pod = await startShopPod({ tmpPrefix: 'mesh-kmulti-' });
  });
  after(async () => {
    await pod?.close();
  });

  it('reports one inbound listener per mapping, each with its app port', () => {
    const line = JSON.parse(pod.output().split('\n').find((l) => l.startsWith('{'))!) as { inboundPorts: { address: string; appPort: number }[] };
    assert.deepEqual(line.inboundPorts.map((p) => [Number(p.address.split(':').pop()), p.appPort]), [[pod.listeners[0], pod.appPorts[0]], [pod.listeners[1], pod.appPorts[1]]]);
  });

  // The inbound port of a pod also takes plaintext: it reads the first bytes to tell TLS from HTTP, so this also
  // checks that the TLS server still sees the ClientHello those bytes were.
  it('forwards each listener to its own app port over mTLS, with the caller verified', async () => {
    // The proxy takes a moment to get its certificate from the control plane.
    await waitFor('the proxy to serve mTLS', async () => (await pod.mtlsGet(pod.listeners[0]!, '/ready').catch(() => ({ status: 0 }))).status === 200, 8_000, 200)
      .catch((err: Error) => { throw new Error(`${err.message}\n${pod.output()}`); });
    pod.seen.length = 0;
    assert.deepEqual(await pod.mtlsGet(pod.listeners[0]!, '/a'), { status: 200, body: 'http /a' });
    assert.deepEqual(await pod.mtlsGet(pod.listeners[1]!, '/b'), { status: 200, body: 'admin /b' });
    assert.deepEqual(await pod.mtlsGet(pod.listeners[1]!, '/c'), { status: 200, body: 'admin /c' });
    assert.deepEqual(pod.seen, [{ app: 'http', clientId: CLIENT_ID }, { app: 'admin', clientId: CLIENT_ID }, { app: 'admin', clientId: CLIENT_ID }]);
  });

  it('sends a meshed request on the default listener to the declared port its Host names', async () => {
    // Peers dial the default inbound port whatever the service port: the Host says which app port.
    assert.deepEqual(await pod.mtlsGet(pod.listeners[0]!, '/d', { host: `shop:${pod.appPorts[1]}` }), { status: 200, body: 'admin /d' });
    assert.deepEqual(await pod.mtlsGet(pod.listeners[0]!, '/e', { host: `shop:${pod.appPorts[0]}` }), { status: 200, body: 'http /e' });
    // A port the pod does not declare goes to the default app port, never anywhere else.
    assert.deepEqual(await pod.mtlsGet(pod.listeners[0]!, '/f', { host: 'shop:1' }), { status: 200, body: 'http /f' });
  });

  it('forwards plaintext (a kubelet probe, an unmeshed client) on each listener to its own app port', async () => {
    const plainGet = async (port: number, path: string) => {
      const r = await get(`127.0.0.1:${port}`, path);
      return { status: r.status, body: r.body };
    };
    pod.seen.length = 0;
    assert.deepEqual(await plainGet(pod.listeners[0]!, '/healthz'), { status: 200, body: 'http /healthz' });
    assert.deepEqual(await plainGet(pod.listeners[1]!, '/healthz'), { status: 200, body: 'admin /healthz' });
    assert.deepEqual(pod.seen, [{ app: 'http', clientId: undefined }, { app: 'admin', clientId: undefined }], 'no identity without TLS');
  });

  describe('the same mapping in-process, TLS only', () => {
    let running: RunningProxy;
    before(async () => {
      running = await startProxy({
        mode: 'sidecar', namespace: 'default', service: 'shop', version: 'v1', instance: 'shop-v1-b', trustDomain: TD, trustAnchorsPem: pod.anchor.certPem,
        controlAddress: `127.0.0.1:${pod.control.port}`, joinToken: () => 'projected-shop', listenHost: '127.0.0.1',
        appPort: pod.appPorts[0], inboundPort: 0, extraInbound: [{ port: 0, appPort: pod.appPorts[1]! }], outboundPort: 0, adminPort: 0,
      });
    });
    after(async () => {
      await running?.close();
    });

    it('forwards each listener to its own app port over mTLS, with the caller verified', async () => {
      const first = Number(running.inbound!.split(':').pop());
      assert.equal(running.extraInbound.length, 1);
      assert.equal(running.extraInbound[0]!.appPort, pod.appPorts[1]);
      const second = Number(running.extraInbound[0]!.address.split(':').pop());
      pod.seen.length = 0;
      assert.deepEqual(await pod.mtlsGet(first, '/a'), { status: 200, body: 'http /a' });
      assert.deepEqual(await pod.mtlsGet(second, '/b'), { status: 200, body: 'admin /b' });
      assert.deepEqual(await pod.mtlsGet(first, '/c'), { status: 200, body: 'http /c' });
      assert.deepEqual(pod.seen, [{ app: 'http', clientId: CLIENT_ID }, { app: 'admin', clientId: CLIENT_ID }, { app: 'http', clientId: CLIENT_ID }]);
    });
  });

  it('refuses a malformed MESH_INBOUND_PORTS, or one on its own ports, with one line and a hint', async () => {
    const run = (value: string, args: string[] = []) => mesh(['--platform', 'kubernetes', 'proxy', '--inbound-port', '4143', '--outbound-port', '0', '--admin-port', '0', ...args],
      { env: pod.proxyEnv({ MESH_INBOUND_PORTS: value }), timeoutMs: 30_000 });
    assertOneLineError(await run('4143=8080,oops'), /MESH_INBOUND_PORTS entry 'oops' is not LISTENER_PORT=APP_PORT — re-inject the pod/);
    const admin = await freePort();
    assertOneLineError(await run(`4143=8080,${admin}=9090`, ['--admin-port', String(admin)]), new RegExp(`listener on port ${admin}, which the proxy uses itself`));
  });
});
