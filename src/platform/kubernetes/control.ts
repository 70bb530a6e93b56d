// `mesh control --platform kubernetes`: the control plane as the mesh-control Deployment runs it. Identity from
// the mounted Secret and ConfigMap (re-read when they change), Routes and Policies from the CRDs, and the injector
// webhook beside the API.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { listen, startControlPlane } from '../../control/start.js';
import { parseDuration } from '../../util/duration.js';
import { MeshError } from '../../util/errors.js';
import { VERSION } from '../../version.js';
import type { KubeClient } from './client.js';
import { defaultImage, webhookDnsNames } from './names.js';
import { createWebhookServer } from './webhook.js';
import { KubeControlPlatform } from './control-platform.js';
import { apiIdentity, mountedIdentity, readKubeWebhookTls, tokenReviewBootstrap, } from './control-identity.js';
import { KubeClientCa, kubeTapAccess } from './tap-access.js';

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
  const pollMs = parseDuration(env.MESH_IDENTITY_POLL_INTERVAL || '10s', 'MESH_IDENTITY_POLL_INTERVAL');
  const address = o.address ?? '0.0.0.0';
  // Outside a pod (mesh control --kubeconfig, nothing mounted) they come from the Secrets and ConfigMap themselves.
  const fromApi = !env.MESH_IDENTITY_DIR && !existsSync(join(identityDir, 'issuer', 'tls.crt'));
  // A rotation (mesh identity rotate-*, or the Secret/ConfigMap edited) is served without a restart.
  const identity = fromApi ? apiIdentity(kube, certLifetimeMs, { log: (l) => log(`control: ${l}`) }) : mountedIdentity(identityDir, pollMs, certLifetimeMs);
  const webhookTls = !env.MESH_WEBHOOK_DIR && !existsSync(join(webhookDir, 'tls.crt')) ? await readKubeWebhookTls(kube)
    : { cert: readMounted(join(webhookDir, 'tls.crt'), 'the webhook certificate'), key: readMounted(join(webhookDir, 'tls.key'), 'the webhook key') };

  // The injector puts the current trust anchors into each pod it mutates.
  const inject = { version: VERSION, image: env.MESH_PROXY_IMAGE || defaultImage(), trustDomain, trustAnchorsPem: '' };
  // Tap callers who authenticate with a client certificate are verified against the cluster's client CA, watched.
  const clientCa = new KubeClientCa(kube, log);
  clientCa.start();
  // Endpoints from EndpointSlices and Pods, Routes and Policies from the CRDs, all kept by watches; proxies' metrics
  // scraped from every running pod (platform.scrapeTargets) for mesh stat, which reaches it by the service proxy.
  const platform = new KubeControlPlatform(kube.kc, trustDomain, { log: (l) => log(`control: ${l}`) });
  const control = await startControlPlane({
    trustDomain,
    identity,
    platform,
    // Proxies bootstrap with their projected ServiceAccount token (TokenReview); there are no join tokens. Tap callers
    // come through a port-forward with their own token (TokenReview) or client certificate (the cluster's client CA),
    // then a SubjectAccessReview per tap.
    auth: {
      adminToken: randomBytes(32).toString('base64url'), joinTokenFor: () => randomBytes(32).toString('base64url'), bootstrap: tokenReviewBootstrap(kube, { log }),
      openTelemetry: true, tap: kubeTapAccess(kube, { log, clientCa }),
    },
    serving: { dnsNames: [...webhookDnsNames(), 'localhost'], ips: ['127.0.0.1'] },
    // The sidecars send their spans to the control plane's API (its TLS, their certificate) unless a pod names a
    // collector of its own (mesh.io/trace-collector); the dashboard reads them through the port-forward.
    traces: 'api',
    port: o.port,
    address,
    portHint: 'pick another port',
    onIdentity: (id) => (inject.trustAnchorsPem = id.trustAnchorsPem),
    log,
  }).catch((err: unknown) => {
    clientCa.stop();
    throw err;
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
  const webhook = createWebhookServer({ tls: webhookTls, namespaceLabels, inject, log });
  const closeWebhook = async () => {
    webhook.closeAllConnections();
    await new Promise<void>((r) => webhook.close(() => r()));
  };
  let webhookPort: number;
  try {
    webhookPort = await listen(webhook, o.webhookPort, address, 'webhook', 'pick another port');
  } catch (err) {
    clientCa.stop();
    await control.close();
    throw err;
  }
  log(`control plane ${VERSION} on kubernetes (context ${kube.contextName}): API on :${control.port}, injector webhook on :${webhookPort}`);

  return {
    port: control.port,
    webhookPort,
    async close() {
      clientCa.stop();
      await control.close();
      await closeWebhook();
    },
  };
}
