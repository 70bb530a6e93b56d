// Mesh objects for the fake API server: a meshed Pod (the proxy as a native sidecar, as inject adds it),
// what `mesh install` renders for the control plane to read, and the control plane as a child process.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeApiServer, type FakeApiServer } from './kube/fake-api-server.js';
import { kubeConfigFor } from './kube/testing.js';
import { fixture } from './golden.js';
import { mesh, startMesh, type CliResult } from './mesh.js';
import type { Started } from './process.js';
import { callJson } from './http.js';
import { KubeClient } from '../../src/platform/kubernetes/client.js';
import { renderControlPlane } from '../../src/platform/kubernetes/manifests.js';
import { KubeControlPlatform } from '../../src/platform/kubernetes/control-platform.js';
import { Registry } from '../../src/control/registry.js';
import { TRUST_ROOTS_CONFIGMAP } from '../../src/platform/kubernetes/names.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export function seedMeshPod(server: FakeApiServer, name: string, labels: Record<string, string>, o: { namespace?: string; sa?: string; ip?: string } = {}): void {
  server.store.create({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: o.namespace ?? 'default', labels },
    spec: {
      serviceAccountName: o.sa ?? labels.app,
      initContainers: [{ name: 'mesh-proxy', image: 'ghcr.io/mesh/mesh:test', restartPolicy: 'Always' }],
      containers: [{ name: 'app', image: 'example/app' }],
    },
    status: { phase: 'Running', podIP: o.ip ?? '10.0.0.1' },
  });
}

/** The webhook certificate in test/fixtures/kube (its CA is webhook-ca.crt). */
export const fixtureWebhook = () => ({ caPem: fixture('kube', 'webhook-ca.crt'), certPem: fixture('kube', 'webhook.crt'), keyPem: fixture('kube', 'webhook.key') });

export interface SeedIdentity {
  trustAnchorsPem: string;
  issuerCertPem: string;
  issuerKeyPem: string;
}

/** Creates what `mesh install` renders for the control plane to read: its Namespace, the Secrets and the trust-roots ConfigMap. */
export function seedControlPlane(server: FakeApiServer, identity: SeedIdentity, o: { trustDomain?: string; certLifetime?: string } = {}): void {
  const objs = renderControlPlane({ version: 'test', image: 'mesh:test', trustDomain: o.trustDomain ?? 'cluster.local', certLifetime: o.certLifetime ?? '24h', identity, webhook: fixtureWebhook() });
  for (const obj of objs) {
    if (obj.kind === 'Namespace' || obj.kind === 'Secret' || obj.metadata.name === TRUST_ROOTS_CONFIGMAP) server.store.create(obj as Obj);
  }
}

/** A client of the fake API server, as the control plane makes one. */
export function kubeClientFor(server: FakeApiServer): Promise<KubeClient> {
  return KubeClient.fromConfig(kubeConfigFor(server));
}

export interface KubeControlProcess {
  process: Started;
  port: number;
  webhookPort: number;
}

/** `mesh control --platform kubernetes` against the fake API server (kubeconfig written in `dir`, HOME there too). */
export async function startKubeControlProcess(server: FakeApiServer, dir: string, env: NodeJS.ProcessEnv = {}, port = 0): Promise<KubeControlProcess> {
  const kubeconfig = server.writeKubeconfig(dir);
  const p = startMesh(['--platform', 'kubernetes', '--kubeconfig', kubeconfig, 'control', '--port', String(port), '--webhook-port', '0'],
    { HOME: dir, KUBECONFIG: '', MESH_IDENTITY_DIR: '', MESH_WEBHOOK_DIR: '', MESH_LISTEN_ADDRESS: '127.0.0.1', ...env });
  try {
    const m = await p.until('API and webhook ports', /API on :(\d+), injector webhook on :(\d+)/, 60_000);
    return { process: p, port: Number(m[1]), webhookPort: Number(m[2]) };
  } catch (err) {
    await p.stop();
    throw err;
  }
}


/** The control plane's API as a proxy calls it: server-only TLS until it presents the certificate it was issued. */
export function asProxy(port: number) {
  let tls: { cert: string; key: string; ca: string } | undefined;
  return {
    call: (method: string, path: string, o: { bearer?: string; body?: unknown } = {}) =>
      callJson(`https://127.0.0.1:${port}${path}`, { method, bearer: o.bearer, json: o.body, timeoutMs: 30_000,
        tls: { servername: 'localhost', ...(tls ?? { rejectUnauthorized: false }) } }),
    /** From now on: mutual TLS with this certificate, the server verified against the anchors that came with it. */
    present(issued: { certificate: string; chain: string[]; trustAnchors: string }, keyPem: string) {
      tls = { cert: issued.certificate + issued.chain.join(''), key: keyPem, ca: issued.trustAnchors };
    },
  };
}

export interface CliCluster {
  server: FakeApiServer;
  /** A temp dir holding the kubeconfig and an empty HOME (home/). */
  dir: string;
  kubeconfig: string;
  /** `mesh --platform kubernetes --kubeconfig <it> ARGS`, with nothing else selecting a cluster. */
  run(args: string[]): Promise<CliResult>;
  close(): Promise<void>;
}

/** A fake API server for CLI tests, with a kubeconfig for it and an empty HOME in a temp dir. */
export async function startCliCluster(tmpPrefix: string, opts: Parameters<typeof startFakeApiServer>[0] = {}): Promise<CliCluster> {
  const server = await startFakeApiServer(opts);
  const dir = mkdtempSync(join(tmpdir(), tmpPrefix));
  mkdirSync(join(dir, 'home'));
  const kubeconfig = server.writeKubeconfig(dir);
  return {
    server, dir, kubeconfig,
    run: (args) => mesh(['--platform', 'kubernetes', '--kubeconfig', kubeconfig, ...args], { env: { HOME: join(dir, 'home'), KUBECONFIG: '', MESH_PLATFORM: '' }, timeoutMs: 60_000 }),
    close: async () => {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The Kubernetes control platform watching a fake API server, with its registry; `stop` also closes the server. */
export async function startWatchedRegistry(server: FakeApiServer, trustDomain: string): Promise<{ kube: KubeClient; platform: KubeControlPlatform; registry: Registry; stop(): Promise<void> }> {
  const kube = await KubeClient.fromConfig(kubeConfigFor(server));
  const platform = new KubeControlPlatform(kube.kc, trustDomain, { retryMs: 20, maxRetryMs: 200 });
  const registry = new Registry(trustDomain, platform);
  await platform.start(registry);
  return {
    kube, platform, registry,
    async stop() {
      platform.stop();
      registry.close();
      await server.close();
    },
  };
}
