// Runs inside a throwaway network namespace (`unshare -n node dist/test/support/capture-ns.js addon|mesh|mesh6`, as root)
// for test/capture.test.ts, and prints one JSON line of what it saw. In the namespace: lo up with 10.77.0.0/24 on it
// (10.77.0.2 the "pod", 10.77.0.3 a server outside the mesh, 10.77.0.10 a Service cluster IP nobody listens on), and
// an iptables REDIRECT of uid 65534's TCP to the outbound port, as mesh-init's rules send an app's (the client runs
// as 65534; the proxy's own connections are spared, as mesh-init spares uid 2102).
//   addon: the addon alone on a redirected and a direct connection, and what a call costs;
//   mesh:  the real `mesh proxy --platform kubernetes` with the control plane on the fake API server; the client's
//          connections to the cluster IP and to the outside server, then with egress denied.
//   mesh6: the same over IPv6 (fd77::2 the pod, fd77::3 outside, fd77::10 the cluster IP), an ip6tables REDIRECT to the
//          proxy's [::1] outbound socket, peers dialling the pod's inbound listener on its IPv6 address.
import net from 'node:net';
import http from 'node:http';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { originalDstAddon, originalDestination } from '../../src/proxy/capture.js';
import { PROXY_PORTS } from '../../src/platform/kubernetes/names.js';
import { renderCrds } from '../../src/platform/kubernetes/crds.js';
import { runKubeControl, type RunningKubeControl } from '../../src/platform/kubernetes/control.js';
import { createIssuer, createTrustAnchor } from '../../src/identity/ca.js';
import { startFakeApiServer, type FakeApiServer } from './kube/fake-api-server.js';
import { kubeClientFor, seedControlPlane, seedMeshPod } from './kube-mesh.js';
import { startMesh, waitFor } from './mesh.js';
import { call } from './http.js';
import type { Started } from './process.js';

/** The addresses of a scenario, per family. */
const NET = {
  4: { pod: '10.77.0.2', outside: '10.77.0.3', clusterIP: '10.77.0.10', addressType: 'IPv4' },
  6: { pod: 'fd77::2', outside: 'fd77::3', clusterIP: 'fd77::10', addressType: 'IPv6' },
} as const;
const POD_IP = NET[4].pod;
const OUTSIDE_IP = NET[4].outside;
const SERVICE_PORT = 7000;
const CLIENT_UID = 65534;
/** The proxy's listener for the pod's second app port (HTTP). */
const WEB_LISTENER = 4145;
const TD = 'cluster.local';

const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'inherit'] });

function setUp(redirectTo: number, family: 4 | 6 = 4): void {
  if (family === 6) {
    // On lo an IPv6 prefix is not all local (IPv4's is): the outside server's address is added too.
    sh(`ip link set lo up && ip -6 addr add ${NET[6].pod}/64 dev lo nodad && ip -6 addr add ${NET[6].outside}/64 dev lo nodad`);
    sh(`ip6tables -w 5 -t nat -A OUTPUT -p tcp -m owner --uid-owner ${CLIENT_UID} -j REDIRECT --to-ports ${redirectTo}`);
    return;
  }
  sh(`ip link set lo up && ip addr add ${POD_IP}/24 dev lo`);
  sh(`iptables -w 5 -t nat -A OUTPUT -p tcp -m owner --uid-owner ${CLIENT_UID} -j REDIRECT --to-ports ${redirectTo}`);
}

const listen = (server: net.Server, port: number, host: string) => new Promise<number>((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, host, () => resolve((server.address() as net.AddressInfo).port));
});

/** A TCP echo server (each byte back, then its own end). */
const echoServer = () => net.createServer({ allowHalfOpen: true }, (s) => {
  s.pipe(s);
  s.on('error', () => s.destroy());
});

/**
 * The addon on redirected IPv4 and IPv6 connections (to a dual-stack listener, so the IPv4 one is v4-mapped), on one
 * made to the listener itself, and the cost of a call. IPv6 only where ip6tables has a nat table.
 */
async function addonAlone(): Promise<unknown> {
  const addon = originalDstAddon();
  if (typeof addon === 'string') throw new Error(addon);
  const server = net.createServer();
  const port = await listen(server, 0, '::');
  setUp(port);
  let v6 = true;
  try {
    sh(`ip -6 addr add fd77::1/64 dev lo nodad && ip6tables -w 5 -t nat -A OUTPUT -p tcp -m owner --uid-owner ${CLIENT_UID} -j REDIRECT --to-ports ${port}`);
  } catch {
    v6 = false;
  }
  const seen: unknown[] = [];
  let usPerCall = 0;
  server.on('connection', (s) => {
    seen.push(originalDestination(addon, s));
    if (seen.length === 1) {
      const fd = (s as unknown as { _handle: { fd: number } })._handle.fd;
      const n = 2000;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) addon.originalDst(fd);
      usPerCall = Number(process.hrtime.bigint() - t0) / n / 1000;
    }
    s.destroy();
  });
  const connect = async (host: string, p: number, uid?: number) => {
    const code = `require('net').connect(${p}, '${host}').on('close', () => process.exit(0)).on('error', (e) => { console.error(e.message); process.exit(1); })`;
    await run(code, uid);
  };
  await connect(OUTSIDE_IP, 9, CLIENT_UID);
  await connect('127.0.0.1', port);
  if (v6) await connect('fd77::5', 443, CLIENT_UID);
  server.close();
  return { redirected: seen[0], direct: seen[1], redirected6: v6 ? seen[2] : 'no ip6tables nat', usPerCall };
}

/** A node one-liner as `uid` (the app whose traffic mesh-init redirects), with its stdout. */
function run(code: string, uid?: number, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'pipe'], ...(uid !== undefined ? { uid, gid: uid } : {}), cwd: '/' });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`client exited ${code}: ${err.trim() || out.trim()}`));
    });
  });
}

/** The client: connects, writes a line, prints what came back before the connection ended. */
const echoClient = (host: string, port: number, line: string) => run(`
  const s = require('net').connect(${port}, '${host}', () => s.end(${JSON.stringify(line)}));
  let got = '';
  s.on('data', (c) => (got += c));
  s.on('close', () => { process.stdout.write(JSON.stringify(got)); process.exit(0); });
  s.on('error', () => {});`, CLIENT_UID).then((out) => JSON.parse(out) as string);

async function meshScenario(family: 4 | 6): Promise<unknown> {
  const n = NET[family];
  setUp(PROXY_PORTS.outbound, family);
  const anchor = await createTrustAnchor(TD);
  const issuer = await createIssuer(TD, anchor);
  const servers: net.Server[] = [];
  let server: FakeApiServer | undefined;
  let control: RunningKubeControl | undefined;
  let proxy: Started | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'mesh-capture-'));
  try {
    // The app behind the Service (on loopback, as a pod's app is reached by its sidecar), and a server outside the mesh.
    const app = echoServer();
    servers.push(app);
    const appPort = await listen(app, 0, '127.0.0.1');
    const outside = echoServer();
    servers.push(outside);
    const outsidePort = await listen(outside, 0, n.outside);
    // The pod's second declared port: HTTP that says which Host it was asked for and who called (the verified identity).
    const web = http.createServer((req, res) => res.end(JSON.stringify({ host: req.headers.host, id: req.headers['mesh-client-id'] ?? null })));
    servers.push(web);
    const webPort = await listen(web, 0, '127.0.0.1');

    server = await startFakeApiServer({ tokenReviews: { 'projected-echo': { username: 'system:serviceaccount:default:echo', audiences: ['mesh.io'] } } });
    seedControlPlane(server, { trustAnchorsPem: anchor.certPem, issuerCertPem: issuer.certPem, issuerKeyPem: issuer.keyPem }, { trustDomain: TD });
    for (const crd of renderCrds()) server.store.create(crd as never);
    seedMeshPod(server, 'echo-a', { app: 'echo', version: 'v1' }, { sa: 'echo', ip: n.pod });
    server.store.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: 'default' },
      spec: { clusterIP: n.clusterIP, clusterIPs: [n.clusterIP], ipFamilies: [n.addressType], selector: { app: 'echo' }, ports: [{ name: 'tcp', port: SERVICE_PORT, targetPort: appPort, protocol: 'TCP' }] } });
    server.store.create({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: n.addressType,
      metadata: { name: 'echo-abc', namespace: 'default', labels: { 'kubernetes.io/service-name': 'echo' } },
      ports: [{ name: 'tcp', port: appPort, protocol: 'TCP' }],
      endpoints: [{ addresses: [n.pod], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'echo-a', namespace: 'default' } }] });
    control = await runKubeControl(await kubeClientFor(server), { port: 0, webhookPort: 0, address: '127.0.0.1', env: { MESH_TRUST_DOMAIN: TD }, log: () => {} });

    writeFileSync(join(dir, 'token'), 'projected-echo\n');
    const { inbound, outbound, admin } = PROXY_PORTS;
    proxy = startMesh(['--platform', 'kubernetes', 'proxy', '--inbound-port', String(inbound), '--outbound-port', String(outbound), '--admin-port', String(admin)], {
      MESH_NAMESPACE: 'default', MESH_POD_NAME: 'echo-a', MESH_SERVICE_ACCOUNT: 'echo', MESH_VERSION: 'v1', MESH_TRUST_DOMAIN: TD,
      MESH_CONTROL_ADDRESS: `127.0.0.1:${control.port}`, MESH_IDENTITY_TOKEN_FILE: join(dir, 'token'), MESH_TRUST_ANCHORS: anchor.certPem,
      MESH_INBOUND_PORTS: `${inbound}=${appPort},${WEB_LISTENER}=${webPort}`, MESH_APP_PORT: '',
    });
    const ready = async () => (await call(`http://127.0.0.1:${admin}/ready`).catch(() => ({ status: 0 }))).status === 200;
    await waitFor('the proxy to be ready', ready, 60_000, 100);

    const t0 = Date.now();
    const toService = await echoClient(n.clusterIP, SERVICE_PORT, 'through the mesh');
    const serviceMs = Date.now() - t0;
    const toOutside = await echoClient(n.outside, outsidePort, 'outside the mesh');
    // The pod's own address, as an app of a headless Service or StatefulSet dials it: opaque TCP, and HTTP whose Host
    // (a pod DNS name) is not a mesh service, routed by where it was going.
    const toPod = await echoClient(n.pod, appPort, 'to the pod through the mesh');
    const podHttp = JSON.parse(await run(`
      require('http').get({ host: '${n.pod}', port: ${webPort}, headers: { host: 'echo-a.echo.default.svc.cluster.local:${webPort}' } }, (res) => {
        let b = '';
        res.on('data', (c) => (b += c));
        res.on('end', () => { process.stdout.write(JSON.stringify({ status: res.statusCode, body: JSON.parse(b) })); process.exit(0); });
      }).on('error', (e) => { console.error(e.message); process.exit(1); });`, CLIENT_UID)) as unknown;
    const metrics = (await call(`http://127.0.0.1:${admin}/metrics`)).body;
    // Egress denied in the namespace: the captured connection to the outside server is closed, nothing echoed.
    server.store.create({ apiVersion: 'mesh.io/v1alpha1', kind: 'Policy', metadata: { name: 'default', namespace: 'default' }, spec: { default: 'allow', egress: 'deny', rules: [] } });
    const denied = await waitFor('egress to be denied', async () => {
      const got = await echoClient(n.outside, outsidePort, 'denied?');
      return got === '' ? 'closed' : undefined;
    }, 30_000, 200);
    const stillMeshed = await echoClient(n.clusterIP, SERVICE_PORT, 'still meshed');
    return { toService, serviceMs, toOutside, toPod, podHttp, denied, stillMeshed, metrics: metrics.split('\n').filter((l) => /^(tcp_|request_total)/.test(l)), log: proxy.output().split('\n').filter((l) => /captur/.test(l)) };
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- proxy:\n${proxy?.output() ?? ''}`);
  } finally {
    await proxy?.stop();
    await control?.close();
    await server?.close();
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const which = process.argv[2];
(which === 'addon' ? addonAlone() : which === 'mesh' ? meshScenario(4) : which === 'mesh6' ? meshScenario(6) : Promise.reject(new Error('usage: capture-ns.js addon|mesh|mesh6')))
  .then((r) => {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(0);
  }, (err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exit(1);
  });
