// The bed of the multi-port pod tests: a meshed pod "shop" (ServiceAccount shop) with two app servers, "http" and
// "admin", an in-process Kubernetes control plane on the fake API server, and the real
// `mesh proxy --platform kubernetes` for the pod with one inbound listener per app port (MESH_INBOUND_PORTS).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeApiServer, type FakeApiServer } from './kube/fake-api-server.js';
import { freePort, startMesh } from './mesh.js';
import { call } from './http.js';
import type { Started } from './process.js';
import { kubeClientFor, seedControlPlane } from './kube-mesh.js';
import { runKubeControl, type RunningKubeControl } from '../../src/platform/kubernetes/control.js';
import { createIssuer, createTrustAnchor, generateKey, Issuer, type CertAndKey } from '../../src/identity/ca.js';
import { formatIdentity, verifyPeer } from '../../src/identity/spiffe.js';

export const TD = 'cluster.local';
export const SHOP_ID = formatIdentity({ trustDomain: TD, namespace: 'default', serviceAccount: 'shop' });
/** The identity of the calling workload whose certificate `mtlsGet` presents. */
export const CLIENT_ID = formatIdentity({ trustDomain: TD, namespace: 'default', serviceAccount: 'web' });

export interface ShopPod {
  server: FakeApiServer;
  control: RunningKubeControl;
  anchor: CertAndKey;
  /** The ports of the "http" and "admin" apps, and of the proxy's inbound listener for each. */
  appPorts: number[];
  listeners: number[];
  /** Each request the apps saw: which app, and the caller identity the proxy passed on. */
  seen: { app: string; clientId?: string }[];
  /** What the proxy printed so far. */
  output(): string;
  /** The env inject gives the proxy container, for this control plane. */
  proxyEnv(extra: Record<string, string>): NodeJS.ProcessEnv;
  /** A request over mTLS to a listener, checking the server is the shop's proxy by its SPIFFE identity. */
  mtlsGet(port: number, path: string, headers?: Record<string, string>): Promise<{ status: number; body: string }>;
  close(): Promise<void>;
}

/** Apps a test runs itself instead of "http" and "admin": their ports, in listener order, and how to stop them. */
export interface ShopApps {
  ports: number[];
  close(): Promise<void> | void;
}

/** `seed` writes what the test needs into the API before the control plane starts (it sees the app ports). */
export async function startShopPod(o: { tmpPrefix: string; seed?: (server: FakeApiServer, appPorts: number[]) => void; apps?: ShopApps; env?: Record<string, string> }): Promise<ShopPod> {
  const anchor = await createTrustAnchor(TD);
  const issuer = await createIssuer(TD, anchor);
  const server = await startFakeApiServer({ tokenReviews: { 'projected-shop': { username: 'system:serviceaccount:default:shop', audiences: ['mesh.io'] } } });
  const apps: http.Server[] = [];
  const appPorts: number[] = [];
  const seen: ShopPod['seen'] = [];
  let control: RunningKubeControl | undefined;
  let proxy: Started | undefined;
  let dir: string | undefined;
  const close = async () => {
    await proxy?.stop();
    for (const a of apps) a.close();
    await o.apps?.close();
    await control?.close();
    await server.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
  try {
    const identity = { trustAnchorsPem: anchor.certPem, issuerCertPem: issuer.certPem, issuerKeyPem: issuer.keyPem };
    seedControlPlane(server, identity, { trustDomain: TD });
    if (o.apps) appPorts.push(...o.apps.ports);
    else for (const name of ['http', 'admin']) {
      const app = http.createServer((req, res) => {
        seen.push({ app: name, clientId: req.headers['mesh-client-id'] as string | undefined });
        res.end(`${name} ${req.url}`);
      });
      await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
      apps.push(app);
      appPorts.push((app.address() as AddressInfo).port);
    }
    o.seed?.(server, appPorts);
    control = await runKubeControl(await kubeClientFor(server), { port: 0, webhookPort: 0, address: '127.0.0.1', env: { MESH_TRUST_DOMAIN: TD }, log: () => {} });
    dir = mkdtempSync(join(tmpdir(), o.tmpPrefix));
    writeFileSync(join(dir, 'token'), 'projected-shop\n');
    // A calling workload's certificate, as its own proxy would hold it.
    const kp = await generateKey();
    const client = { cert: new Issuer(issuer).issueLeaf({ uri: CLIENT_ID, publicKeyPem: kp.publicKeyPem, lifetimeMs: 3600_000 }) + issuer.certPem, key: kp.keyPem };
    const controlPort = control.port;
    const tokenFile = join(dir, 'token');
    const proxyEnv = (extra: Record<string, string>): NodeJS.ProcessEnv => ({
      MESH_NAMESPACE: 'default', MESH_POD_NAME: 'shop-v1-a', MESH_SERVICE_ACCOUNT: 'shop', MESH_VERSION: 'v1',
      MESH_TRUST_DOMAIN: TD, MESH_CONTROL_ADDRESS: `127.0.0.1:${controlPort}`, MESH_IDENTITY_TOKEN_FILE: tokenFile,
      MESH_TRUST_ANCHORS: anchor.certPem, MESH_APP_PORT: '', ...extra,
    });
    const listeners: number[] = [];
    for (let i = 0; i < appPorts.length; i++) listeners.push(await freePort());
    proxy = startMesh(['--platform', 'kubernetes', 'proxy', '--inbound-port', String(listeners[0]), '--outbound-port', '0', '--admin-port', '0'],
      proxyEnv({ ...o.env, MESH_INBOUND_PORTS: listeners.map((l, i) => `${l}=${appPorts[i]}`).join(',') }));
    await proxy.until('the proxy to report its listeners', (out) => out.split('\n').some((l) => l.startsWith('{')) || undefined, 30_000);
    const mtlsGet = async (port: number, path: string, headers: Record<string, string> = {}) => {
      const r = await call(`https://127.0.0.1:${port}${path}`, { headers, tls: {
        ca: anchor.certPem, cert: client.cert, key: client.key, servername: 'shop',
        checkServerIdentity: (_h, cert) => {
          const id = formatIdentity(verifyPeer(new X509Certificate(cert.raw), TD));
          return id === SHOP_ID ? undefined : new Error(`the server is ${id}`);
        },
      } });
      return { status: r.status, body: r.body };
    };
    return { server, control, anchor, appPorts, listeners, seen, output: () => proxy?.output() ?? '', proxyEnv, mtlsGet, close };
  } catch (err) {
    await close();
    throw err;
  }
}
