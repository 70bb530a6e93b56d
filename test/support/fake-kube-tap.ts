// The fake API server with mesh-control (a child process) behind a pods/portforward and one meshed pod's real
// sidecar in front of an app, for tap, top and the dashboard on Kubernetes: token users jane (may tap), bob (may not
// tap) and carol (may not port-forward into mesh-system), and client-certificate users alice (may tap) and dan (may
// not), each with a kubeconfig of their own.
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeApiServer, type FakeApiServer } from './kube/fake-api-server.js';
import { mesh, startMesh, waitFor, type CliResult } from './mesh.js';
import { get } from './http.js';
import { fixture } from './golden.js';
import { seedControlPlane, startKubeControlProcess, type KubeControlProcess } from './kube-mesh.js';
import type { Started } from './process.js';
import { renderCrds } from '../../src/platform/kubernetes/crds.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export type TapUser = 'jane' | 'bob' | 'carol' | 'alice' | 'dan';

export interface TapBed {
  server: FakeApiServer;
  dir: string;
  control: KubeControlProcess;
  /** The control plane's pod now (a restart makes a new one). */
  controlPod: string;
  /** The sidecar's inbound listener (plaintext, as a kubelet probe comes). */
  inbound: string;
  kubeconfig: Record<TapUser, string>;
  /** The CLI on the kubernetes platform as one of the users. */
  cli(user: TapUser, args: string[], timeoutMs?: number): Promise<CliResult>;
  /** The env a CLI child needs to act as a user (HOME in the bed, no KUBECONFIG or MESH_PLATFORM of the machine). */
  env: NodeJS.ProcessEnv;
  /** Requests to the sidecar's inbound port until the returned function is called. */
  load(): () => Promise<void>;
  /**
   * As a rollout restarts mesh-control: its process stopped (open port-forwards drop), its pod replaced by one of
   * another name, a new process on the same port (the sidecar's MESH_CONTROL_ADDRESS), forwarded to from the new pod.
   */
  restartControl(): Promise<void>;
  stop(): Promise<void>;
}

const controlPod = (name: string): Obj => ({
  apiVersion: 'v1', kind: 'Pod',
  metadata: { name, namespace: 'mesh-system', labels: { 'app.kubernetes.io/part-of': 'mesh', 'app.kubernetes.io/component': 'control' } },
  spec: { containers: [{ name: 'control', image: 'ghcr.io/mesh/mesh:test' }] },
  status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
});

export async function startTapBed(prefix: string): Promise<TapBed> {
  const server = await startFakeApiServer({
    tokenReviews: {
      'projected-reviews': { username: 'system:serviceaccount:default:reviews', audiences: ['mesh.io'] },
      'jane-token': { username: 'jane', groups: ['system:authenticated'] },
      'bob-token': { username: 'bob', groups: ['system:authenticated'] },
      'carol-token': { username: 'carol', groups: ['system:authenticated'] },
    },
    // bob and dan may not tap; carol may not port-forward into mesh-system. jane, alice (and the admin) may do both.
    clientCertificates: true,
    deny: [
      { verb: 'watch', group: 'tap.mesh.io', resource: 'deployments/tap', user: 'bob' },
      { verb: 'watch', group: 'tap.mesh.io', resource: 'deployments/tap', user: 'dan' },
      { verb: 'create', group: '', resource: 'pods/portforward', namespace: 'mesh-system', user: 'carol' },
    ],
  });
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const kubeconfig = {} as TapBed['kubeconfig'];
  for (const user of ['jane', 'bob', 'carol'] as const) {
    kubeconfig[user] = join(dir, `${user}.kubeconfig`);
    writeFileSync(kubeconfig[user], server.kubeconfigYaml.replace(server.token, `${user}-token`), { mode: 0o600 });
  }
  for (const user of ['alice', 'dan'] as const) {
    kubeconfig[user] = join(dir, `${user}.kubeconfig`);
    writeFileSync(kubeconfig[user], server.userKubeconfig(user, ['dev']), { mode: 0o600 });
  }
  for (const crd of renderCrds()) server.store.create(crd as Obj);
  seedControlPlane(server, { trustAnchorsPem: fixture('kube', 'anchor.crt'), issuerCertPem: fixture('kube', 'issuer.crt'), issuerKeyPem: fixture('kube', 'issuer.key') });
  // A pod of Deployment reviews-v1 (through its ReplicaSet), meshed, and the control plane's pod.
  server.store.create({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: 'reviews-v1-7d9f-x1', namespace: 'default', labels: { app: 'reviews', version: 'v1', 'pod-template-hash': '7d9f' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'reviews-v1-7d9f', uid: 'u1', controller: true }] },
    spec: { serviceAccountName: 'reviews', initContainers: [{ name: 'mesh-proxy', image: 'ghcr.io/mesh/mesh:test', restartPolicy: 'Always' }], containers: [{ name: 'app', image: 'example/app' }] },
    status: { phase: 'Running', podIP: '10.1.0.1' },
  });
  let pod = 'mesh-control-5c9d-abcde';
  server.store.create(controlPod(pod));
  let control = await startKubeControlProcess(server, dir);
  server.portForwards.set(`mesh-system/${pod}:8443`, `127.0.0.1:${control.port}`);

  // The pod's sidecar, as kube-control-process runs one: its projected token, the app behind it.
  const app = http.createServer((_req, res) => res.end('reviews ok'));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'projected-reviews\n');
  const proxy: Started = startMesh(['--platform', 'kubernetes', 'proxy', '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0'], {
    ...process.env, MESH_NAMESPACE: 'default', MESH_POD_NAME: 'reviews-v1-7d9f-x1', MESH_SERVICE_ACCOUNT: 'reviews', MESH_VERSION: 'v1',
    MESH_TRUST_DOMAIN: 'cluster.local', MESH_CONTROL_ADDRESS: `127.0.0.1:${control.port}`, MESH_IDENTITY_TOKEN_FILE: tokenFile,
    MESH_TRUST_ANCHORS: fixture('kube', 'anchor.crt'), MESH_APP_PORT: String((app.address() as { port: number }).port),
  });
  const addrs = await proxy.until('its listeners', (out) => {
    const line = out.split('\n').find((l) => l.startsWith('{'));
    return line ? JSON.parse(line) as { admin: string; inbound: string } : undefined;
  }, 30_000);
  const inbound = `127.0.0.1:${addrs.inbound.split(':').pop()}`;
  const admin = `127.0.0.1:${addrs.admin.split(':').pop()}`;
  await waitFor('the sidecar to be ready', async () => (await get(admin, '/ready')).status === 200, 30_000, 100);

  const env = { HOME: dir, KUBECONFIG: '', MESH_PLATFORM: '' };
  const bed: TapBed = {
    server, dir, control, controlPod: pod, inbound, kubeconfig, env,
    cli: (user, args, timeoutMs = 60_000) => mesh(['--platform', 'kubernetes', '--kubeconfig', kubeconfig[user], ...args], { env, timeoutMs }),
    load() {
      let stopped = false;
      const done = (async () => {
        while (!stopped) {
          await get(inbound, '/reviews/0').catch(() => {});
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      return async () => {
        stopped = true;
        await done;
      };
    },
    async restartControl() {
      const port = control.port;
      await control.process.stop();
      server.portForwards.delete(`mesh-system/${pod}:8443`);
      server.store.delete({ apiVersion: 'v1', kind: 'Pod', namespace: 'mesh-system', name: pod });
      // The new pod is listed once it is ready, as the CLI picks a ready one.
      control = await startKubeControlProcess(server, dir, {}, port);
      pod = `mesh-control-5c9d-r${Date.now().toString(36)}`;
      server.store.create(controlPod(pod));
      server.portForwards.set(`mesh-system/${pod}:8443`, `127.0.0.1:${control.port}`);
      bed.control = control;
      bed.controlPod = pod;
    },
    async stop() {
      await proxy.stop();
      app.close();
      await control.process.stop();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return bed;
}
