// `mesh control --platform kubernetes`: the control plane as the mesh-control Deployment runs it. Identity from
// the mounted Secret and ConfigMap (re-read when they change), Routes and Policies from the CRDs, and the injector
// webhook beside the API.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type https from 'node:https';
import { join } from 'node:path';
import { certInfo, generateKey, splitPem, type Issuer } from '../../identity/ca.js';
import { identityEpoch } from '../../identity/epoch.js';
import { identityErrors } from '../../identity/chain.js';
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
import { apiIdentity, mountedIdentity, readKubeWebhookTls, tokenReviewBootstrap, type IdentitySource } from './control-identity.js';
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
  const pollMs = parseDuration(env.MESH_IDENTITY_POLL_INTERVAL || '10s', 'MESH_IDENTITY_POLL_INTERVAL');
  // Outside a pod (mesh control --kubeconfig, nothing mounted) they come from the Secrets and ConfigMap themselves.
  const fromApi = !env.MESH_IDENTITY_DIR && !existsSync(join(identityDir, 'issuer', 'tls.crt'));
  const source: IdentitySource = fromApi ? apiIdentity(kube, { log: (l) => log(`control: ${l}`) }) : mountedIdentity(identityDir, pollMs);
  const { trustAnchorsPem, issuerCertPem, issuer } = await source.read();
  const webhookTls = !env.MESH_WEBHOOK_DIR && !existsSync(join(webhookDir, 'tls.crt')) ? await readKubeWebhookTls(kube)
    : { cert: readMounted(join(webhookDir, 'tls.crt'), 'the webhook certificate'), key: readMounted(join(webhookDir, 'tls.key'), 'the webhook key') };

  // Endpoints from EndpointSlices and Pods, Routes and Policies from the CRDs, all kept by watches.
  const platform = new KubeControlPlatform(kube.kc, trustDomain, { log: (l) => log(`control: ${l}`) });
  const registry = new Registry(trustDomain, platform);
  registry.setIdentityEpoch(identityEpoch(trustAnchorsPem, issuerCertPem));
  await platform.start(registry);
  // Proxies' metrics scraped at their admin port (pod IP:4191) for mesh stat, which reaches it by the service proxy.
  // Every running pod, not the registry's endpoints: pods without a Service have figures too, and MESHED counts both kinds.
  const telemetry = new Telemetry({ list: () => platform.podRecords() }, { log });
  telemetry.start();

  // The API's own certificate lives as long as a workload's (MESH_CERT_LIFETIME, from mesh install --cert-lifetime) and
  // is renewed like one, at ~70% of its life, as well as when the identity is reloaded (ControlServerOptions.renewTls).
  const controlTls = async (signer: Issuer, chainPem: string, lifetimeMs: number = certLifetimeMs) => {
    const kp = await generateKey();
    const cert = signer.issueLeaf({
      uri: formatIdentity({ trustDomain, namespace: CONTROL_NAMESPACE, serviceAccount: CONTROL_NAME }),
      publicKeyPem: kp.publicKeyPem, lifetimeMs, dnsNames: [...webhookDnsNames(), 'localhost'], ips: ['127.0.0.1'],
    });
    return { cert: cert + chainPem, key: kp.keyPem };
  };
  const control = createControlServer({
    trustDomain, trustAnchorsPem, issuer, issuerCertPem, certLifetimeMs, registry,
    // Proxies bootstrap with their projected ServiceAccount token (TokenReview); there are no join tokens.
    auth: { adminToken: randomBytes(32).toString('base64url'), joinTokenFor: () => randomBytes(32).toString('base64url'), bootstrap: tokenReviewBootstrap(kube, { log }), openTelemetry: true },
    telemetry,
    tls: await controlTls(issuer, issuerCertPem),
    renewTls: controlTls,
    log,
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
  const inject = { version: VERSION, image: env.MESH_PROXY_IMAGE || defaultImage(), trustDomain, trustAnchorsPem };
  const webhook = createWebhookServer({ tls: webhookTls, namespaceLabels, inject, log });

  // A rotation (mesh identity rotate-*, or the Secret/ConfigMap edited) is served without a restart, and the new
  // identity epoch in the snapshot makes every proxy renew at once. One reload at a time.
  let epoch = identityEpoch(trustAnchorsPem, issuerCertPem);
  let reloading = Promise.resolve();
  const reload = async () => {
    let next;
    try {
      next = await source.read();
    } catch (err) {
      return log(`control: identity changed but not reloaded (the previous one stays): ${(err as Error).message}`);
    }
    const nextEpoch = identityEpoch(next.trustAnchorsPem, next.issuerCertPem);
    if (nextEpoch === epoch) return;
    // As the local reload does: never sign with an issuer no proxy would trust (or half of an edit in progress).
    const errors = identityErrors({ anchorsPem: next.trustAnchorsPem, issuerCertPem: next.issuerCertPem, issuerKeyPem: next.issuer.issuer.keyPem });
    if (errors.length) return log(`control: identity changed but not reloaded (the previous one stays): ${errors.join('; ')}`);
    control.applyIdentity({ ...next, certLifetimeMs, tls: await controlTls(next.issuer, next.issuerCertPem) });
    inject.trustAnchorsPem = next.trustAnchorsPem;
    epoch = nextEpoch;
    registry.setIdentityEpoch(epoch);
    log(`control: identity reloaded (${splitPem(next.trustAnchorsPem).length} trust anchor(s), issuer valid until ${certInfo(next.issuerCertPem).notAfter.toISOString()}); proxies renew now`);
  };
  const stopIdentityWatch = await source.watch(() => {
    reloading = reloading.then(reload).catch((err: unknown) => log(`control: identity reload failed: ${(err as Error).message}`));
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
      stopIdentityWatch();
      await reloading;
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
