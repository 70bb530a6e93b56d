// `mesh control --platform kubernetes`: the control plane as the mesh-control Deployment runs it. Identity from
// the mounted Secret and ConfigMap, Routes and Policies from the CRDs, and the injector webhook beside the API.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type https from 'node:https';
import { join } from 'node:path';
import { DAY, Issuer, generateKey } from '../../identity/ca.js';
import { formatIdentity } from '../../identity/spiffe.js';
import { Registry } from '../../control/registry.js';
import { createControlServer } from '../../control/server.js';
import type { ControlPlatform } from '../../control/platform.js';
import type { ConfigKind } from '../../model/snapshot.js';
import { validateRoute, type Route } from '../../model/route.js';
import { validatePolicy, type Policy } from '../../model/policy.js';
import { parseDuration } from '../../util/duration.js';
import { MeshError } from '../../util/errors.js';
import { VERSION } from '../../version.js';
import type { KubeClient } from './client.js';
import { CONTROL_NAME, CONTROL_NAMESPACE, CRD_GROUP, CRD_VERSION, defaultImage, webhookDnsNames } from './names.js';
import { createWebhookServer } from './webhook.js';

export interface KubeControlOptions {
  port: number;
  webhookPort: number;
  /** Listen address; in a pod every interface. */
  address?: string;
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}

export interface RunningKubeControl {
  port: number;
  webhookPort: number;
  close(): Promise<void>;
}

/** Endpoints and config live in memory: on Kubernetes the API server is the store (CRDs, EndpointSlices). */
class KubernetesControlPlatform implements ControlPlatform {
  readonly name = 'kubernetes' as const;
  private readonly config = new Map<ConfigKind, unknown>();
  loadEndpoints() {
    return [];
  }
  saveEndpoints(): void {}
  endpointGone(): boolean {
    return false;
  }
  loadConfig(kind: ConfigKind): unknown {
    return this.config.get(kind);
  }
  saveConfig(kind: ConfigKind, value: unknown): void {
    this.config.set(kind, value);
  }
}

function readMounted(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new MeshError(`cannot read ${what} at ${path}`, `mount it (see the mesh-control Deployment) or set the MESH_*_DIR variables`);
  }
}

/** Routes and Policies from the CRDs, as the stored config documents (invalid ones are skipped and logged). */
export async function loadCrdConfig(kube: KubeClient, log: (l: string) => void): Promise<{ routes: { routes: Route[] }; policies: { policies: Policy[] } }> {
  const key = (o: { metadata: { namespace: string; name: string } }) => `${o.metadata.namespace}/${o.metadata.name}`;
  const strip = (o: Record<string, unknown>) => {
    const md = o.metadata as { name: string; namespace: string };
    return { apiVersion: o.apiVersion, kind: o.kind, metadata: { name: md.name, namespace: md.namespace }, spec: o.spec };
  };
  const routes: Route[] = [];
  for (const r of await kube.list<Record<string, unknown> & { apiVersion: string }>(`${CRD_GROUP}/${CRD_VERSION}`, 'Route')) {
    const v = validateRoute(strip(r));
    if (v.value) routes.push(v.value);
    else log(`control: route ${key(strip(r) as never)} ignored: ${v.errors.join('; ')}`);
  }
  const policies: Policy[] = [];
  for (const p of await kube.list<Record<string, unknown> & { apiVersion: string }>(`${CRD_GROUP}/${CRD_VERSION}`, 'Policy')) {
    const v = validatePolicy(strip(p));
    if (v.value) policies.push(v.value);
    else log(`control: policy ${key(strip(p) as never)} ignored: ${v.errors.join('; ')}`);
  }
  routes.sort((a, b) => key(a).localeCompare(key(b)));
  policies.sort((a, b) => key(a).localeCompare(key(b)));
  return { routes: { routes }, policies: { policies } };
}

export async function runKubeControl(kube: KubeClient, o: KubeControlOptions): Promise<RunningKubeControl> {
  const env = o.env ?? process.env;
  const log = o.log ?? ((l: string) => console.log(l));
  const identityDir = env.MESH_IDENTITY_DIR || '/var/run/mesh/identity';
  const webhookDir = env.MESH_WEBHOOK_DIR || '/var/run/mesh/webhook';
  const trustDomain = env.MESH_TRUST_DOMAIN || 'cluster.local';
  const certLifetimeMs = parseDuration(env.MESH_CERT_LIFETIME || '24h', 'MESH_CERT_LIFETIME');
  const trustAnchorsPem = readMounted(join(identityDir, 'trust-roots', 'ca-bundle.crt'), 'the trust anchors');
  const issuerCertPem = readMounted(join(identityDir, 'issuer', 'tls.crt'), 'the issuer certificate');
  const issuer = new Issuer({ certPem: issuerCertPem, keyPem: readMounted(join(identityDir, 'issuer', 'tls.key'), 'the issuer key') });
  const webhookTls = { cert: readMounted(join(webhookDir, 'tls.crt'), 'the webhook certificate'), key: readMounted(join(webhookDir, 'tls.key'), 'the webhook key') };

  const registry = new Registry(trustDomain, new KubernetesControlPlatform());
  const refresh = async () => {
    const c = await loadCrdConfig(kube, log);
    for (const kind of ['routes', 'policies'] as const) {
      if (JSON.stringify(registry.getConfig(kind)) !== JSON.stringify(c[kind])) registry.setConfig(kind, c[kind]);
    }
  };
  await refresh();
  // A re-list every few seconds keeps Routes and Policies current (a watch is the next step).
  const poll = setInterval(() => void refresh().catch((err: unknown) => log(`control: reading routes and policies failed: ${(err as Error).message}`)), 5000);
  poll.unref();

  const kp = await generateKey();
  const controlCert = issuer.issueLeaf({
    uri: formatIdentity({ trustDomain, namespace: CONTROL_NAMESPACE, serviceAccount: CONTROL_NAME }),
    publicKeyPem: kp.publicKeyPem, lifetimeMs: DAY, dnsNames: [...webhookDnsNames(), 'localhost'], ips: ['127.0.0.1'],
  });
  const control = createControlServer({
    trustDomain, trustAnchorsPem, issuer, issuerCertPem, certLifetimeMs, registry,
    // Bootstrap by ServiceAccount token (TokenReview) is not wired yet: no join token is accepted.
    auth: { adminToken: randomBytes(32).toString('base64url'), joinTokenFor: () => randomBytes(32).toString('base64url') },
    tls: { cert: controlCert + issuerCertPem, key: kp.keyPem },
  });

  // The webhook asks for namespace labels per pod; a short cache spares the API server during a rollout.
  const nsCache = new Map<string, { at: number; labels?: Record<string, string> }>();
  const namespaceLabels = async (name: string) => {
    const hit = nsCache.get(name);
    if (hit && Date.now() - hit.at < 5000) return hit.labels;
    const ns = await kube.read<{ apiVersion: string; metadata?: { labels?: Record<string, string> } }>({ apiVersion: 'v1', kind: 'Namespace', name }).catch(() => undefined);
    nsCache.set(name, { at: Date.now(), labels: ns?.metadata?.labels });
    return ns?.metadata?.labels;
  };
  const webhook = createWebhookServer({
    tls: webhookTls,
    namespaceLabels,
    inject: { version: VERSION, image: env.MESH_PROXY_IMAGE || defaultImage(), trustDomain, trustAnchorsPem },
    log,
  });

  const listen = (server: https.Server, port: number, what: string) => new Promise<number>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? new MeshError(`${what} port ${port} is in use`, 'pick another port') : err));
    server.listen(port, o.address ?? '0.0.0.0', () => resolve((server.address() as AddressInfo).port));
  });
  const port = await listen(control, o.port, 'control');
  const webhookPort = await listen(webhook, o.webhookPort, 'webhook');
  log(`control plane ${VERSION} on kubernetes (context ${kube.contextName}): API on :${port}, injector webhook on :${webhookPort}`);

  return {
    port, webhookPort,
    async close() {
      clearInterval(poll);
      registry.close();
      for (const s of [control, webhook]) {
        s.closeAllConnections();
        await new Promise<void>((r) => s.close(() => r()));
      }
    },
  };
}
