// The real single-node cluster of ../shared/kube (kube-local) for test/kube-real*: bring it up or say why not,
// build the mesh image into it, and the few raw API calls the tests need beyond KubeClient (logs, scale).
import { execFile } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KubeClient } from '../../src/platform/kubernetes/client.js';
import { ROOT } from './mesh.js';

const run = promisify(execFile);
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface ImageScript {
  findKubeLocal(): { dir?: string; why?: string };
  buildImage(kubeDir: string, o?: { quiet?: boolean }): Promise<string>;
}
// A path, not a specifier tsc resolves: the script is plain ESM outside the TypeScript project.
const imageScript = (): Promise<ImageScript> => import(join(ROOT, 'scripts', 'image-local.mjs')) as Promise<ImageScript>;

export interface RealCluster {
  dir: string;
  kubeconfig: string;
  kube: KubeClient;
  image: string;
  /** Seconds: up, image build. */
  timings: { up: number; image: number };
  down(): Promise<void>;
}

/** The cluster, up and holding the mesh image built from this checkout's dist/; or why the suite skips. */
export async function realCluster(): Promise<RealCluster | { skip: string }> {
  const { findKubeLocal, buildImage } = await imageScript();
  const found = findKubeLocal();
  if (!found.dir) return { skip: found.why ?? 'no kube-local' };
  if (process.getuid?.() !== 0) return { skip: 'kube-local needs root (it starts kubelet, containerd and iptables rules)' };
  const dir = found.dir;
  const t0 = Date.now();
  let exported: string;
  try {
    exported = (await run(join(dir, 'up'), [], { timeout: 600_000, maxBuffer: 16 << 20 })).stdout.trim().split('\n').pop() ?? '';
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return { skip: `kube-local up failed: ${(e.stderr || e.message).trim().split('\n').pop()}` };
  }
  const kubeconfig = /KUBECONFIG=(\S+)/.exec(exported)?.[1];
  if (!kubeconfig) return { skip: `kube-local up did not print its KUBECONFIG (last line: ${exported})` };
  const up = (Date.now() - t0) / 1000;
  const t1 = Date.now();
  const image = await buildImage(dir, { quiet: true });
  const kube = await KubeClient.connect({ kubeconfig });
  return {
    dir, kubeconfig, kube, image, timings: { up, image: (Date.now() - t1) / 1000 },
    async down() {
      await run(join(dir, 'down'), [], { timeout: 300_000, maxBuffer: 16 << 20 });
    },
  };
}

/** One API request with the kubeconfig's credentials; the body as text (pod logs are not JSON). */
export async function apiCall(kube: KubeClient, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; text: string }> {
  const url = new URL(kube.server.replace(/\/+$/, '') + path);
  const data = body === undefined ? undefined : JSON.stringify(body);
  const opts: https.RequestOptions = { method, headers: { 'Content-Type': contentType, ...(data ? { 'Content-Length': Buffer.byteLength(data) } : {}) } };
  await kube.kc.applyToHTTPSOptions(opts);
  return new Promise((resolve, reject) => {
    const req = https.request(url, opts, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(data);
  });
}

/** Sets a Deployment's replicas through its scale subresource (as kubectl scale). */
export async function scale(kube: KubeClient, namespace: string, name: string, replicas: number): Promise<void> {
  const r = await apiCall(kube, 'PATCH', `/apis/apps/v1/namespaces/${namespace}/deployments/${name}/scale`, { spec: { replicas } }, 'application/merge-patch+json');
  if (r.status !== 200) throw new Error(`scale ${namespace}/${name}: HTTP ${r.status} ${r.text}`);
}

export async function podLog(kube: KubeClient, namespace: string, pod: string, container: string): Promise<string> {
  const r = await apiCall(kube, 'GET', `/api/v1/namespaces/${namespace}/pods/${pod}/log?container=${container}`);
  return r.status === 200 ? r.text : '';
}

export async function pods(kube: KubeClient, namespace: string, labelSelector?: string): Promise<Obj[]> {
  return kube.list<Obj>('v1', 'Pod', { namespace, labelSelector });
}

/** The pod IP of the one running, ready pod a selector picks (pods are reachable from this machine on cni0). */
export async function podIP(kube: KubeClient, namespace: string, labelSelector: string): Promise<string> {
  const ready = (await pods(kube, namespace, labelSelector)).filter((p) => !p.metadata.deletionTimestamp && p.status?.phase === 'Running' && p.status?.podIP);
  if (ready.length !== 1) throw new Error(`${ready.length} running pods match ${labelSelector} in ${namespace}`);
  return ready[0]!.status.podIP as string;
}

/** GET http://ip:port/path, plain HTTP from this machine (an unmeshed client: no identity). */
export function httpGet(ip: string, port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: ip, port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${ip}:${port}${path} timed out`)));
    req.on('error', reject);
  });
}

/** The certificate a proxy's mTLS listener presents (read before our missing client certificate is refused). */
export function servedCert(ip: string, port: number): Promise<{ serial: string; validFrom: number; validTo: number; uri: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: ip, port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const c = s.getPeerCertificate();
      s.destroy();
      resolve({ serial: c.serialNumber, validFrom: Date.parse(c.valid_from), validTo: Date.parse(c.valid_to), uri: c.subjectaltname ?? '' });
    });
    s.setTimeout(5000, () => s.destroy(new Error(`TLS to ${ip}:${port} timed out`)));
    s.on('error', reject);
  });
}
