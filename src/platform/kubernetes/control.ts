// `mesh control --platform kubernetes`: the control plane as the mesh-control Deployment runs it. Identity from
// the mounted Secret and ConfigMap, Routes and Policies from the CRDs, and the injector webhook beside the API.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type https from 'node:https';
import { join } from 'node:path';
import { DAY, Issuer, generateKey } from '../../identity/ca.js';
import { formatIdentity } from '../../identity/spiffe.js';
import { Registry } from '../../control/registry.js';
import { createControlServer } from '../../control/server.js';
import { parseDuration } from '../../util/duration.js';
import { MeshError } from '../../util/errors.js';
import { VERSION } from '../../version.js';
import type { KubeClient } from './client.js';
import { CONTROL_NAME, CONTROL_NAMESPACE, defaultImage, webhookDnsNames } from './names.js';
import { createWebhookServer } from './webhook.js';
import { KubeControlPlatform } from './control-platform.js';
import { readKubeIdentity, readKubeWebhookTls, tokenReviewBootstrap } from './control-identity.js';
import { Telemetry } from '../../control/telemetry/index.js';

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

function readMounted(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new MeshError(`cannot read ${what} at ${path}`, `mount it (see the mesh-control Deployment) or set the MESH_*_DIR variables`);
  }
}

export async function runKubeControl(kube: KubeClient, o: KubeControlOptions): Promise<RunningKubeControl> {
  const env = o.env ?? process.env;
  const log = o.log ?? ((l: string) => console.log(l));
  const identityDir = env.MESH_IDENTITY_DIR || '/var/run/mesh/identity';
  const webhookDir = env.MESH_WEBHOOK_DIR || '/var/run/mesh/webhook';
  const trustDomain = env.MESH_TRUST_DOMAIN || 'cluster.local';
  const certLifetimeMs = parseDuration(env.MESH_CERT_LIFETIME || '24h', 'MESH_CERT_LIFETIME');
  // Outside a pod (mesh control --kubeconfig, nothing mounted) they come from the Secrets and ConfigMap themselves.
  const fromApi = !env.MESH_IDENTITY_DIR && !existsSync(join(identityDir, 'issuer', 'tls.crt'));
  const api = fromApi ? await readKubeIdentity(kube) : undefined;
  const trustAnchorsPem = api?.trustAnchorsPem ?? readMounted(join(identityDir, 'trust-roots', 'ca-bundle.crt'), 'the trust anchors');
  const issuerCertPem = api?.issuerCertPem ?? readMounted(join(identityDir, 'issuer', 'tls.crt'), 'the issuer certificate');
  const issuer = api?.issuer ?? new Issuer({ certPem: issuerCertPem, keyPem: readMounted(join(identityDir, 'issuer', 'tls.key'), 'the issuer key') });
  const webhookTls = !env.MESH_WEBHOOK_DIR && !existsSync(join(webhookDir, 'tls.crt')) ? await readKubeWebhookTls(kube)
    : { cert: readMounted(join(webhookDir, 'tls.crt'), 'the webhook certificate'), key: readMounted(join(webhookDir, 'tls.key'), 'the webhook key') };

  // Endpoints from EndpointSlices and Pods, Routes and Policies from the CRDs, all kept by watches.
  const platform = new KubeControlPlatform(kube.kc, trustDomain, { log: (l) => log(`control: ${l}`) });
  const registry = new Registry(trustDomain, platform);
  await platform.start(registry);
  // Proxies' metrics scraped at their admin port (pod IP:4191) for mesh stat, which reaches it by the service proxy.
  const telemetry = new Telemetry(registry, { log });
  telemetry.start();

  const kp = await generateKey();
  const controlCert = issuer.issueLeaf({
    uri: formatIdentity({ trustDomain, namespace: CONTROL_NAMESPACE, serviceAccount: CONTROL_NAME }),
    publicKeyPem: kp.publicKeyPem, lifetimeMs: DAY, dnsNames: [...webhookDnsNames(), 'localhost'], ips: ['127.0.0.1'],
  });
  const control = createControlServer({
    trustDomain, trustAnchorsPem, issuer, issuerCertPem, certLifetimeMs, registry,
    // Proxies bootstrap with their projected ServiceAccount token (TokenReview); there are no join tokens.
    auth: { adminToken: randomBytes(32).toString('base64url'), joinTokenFor: () => randomBytes(32).toString('base64url'), bootstrap: tokenReviewBootstrap(kube, { log }), openTelemetry: true },
    telemetry,
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
      platform.stop();
      await telemetry.close();
      registry.close();
      for (const s of [control, webhook]) {
        s.closeAllConnections();
        await new Promise<void>((r) => s.close(() => r()));
      }
    },
  };
}
