// Identity for the control plane on Kubernetes: the issuer and trust anchors from what `mesh install` renders
// (Secret mesh-identity-issuer, ConfigMap mesh-identity-trust-roots), and workload bootstrap by projected
// ServiceAccount token checked with a TokenReview (audience mesh.io).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Issuer } from '../../identity/ca.js';
import { identityErrors } from '../../identity/chain.js';
import { identityEpoch } from '../../identity/epoch.js';
import type { ControlIdentity } from '../../control/server.js';
import type { IdentitySource } from '../../control/start.js';
import { MeshError } from '../../util/errors.js';
import type { KubeClient } from './client.js';
import { ListWatch } from './list-watch.js';
import { CONTROL_NAMESPACE, ISSUER_SECRET, TOKEN_AUDIENCE, TRUST_ROOTS_CONFIGMAP, WEBHOOK_SECRET } from './names.js';

export interface KubeIdentity {
  trustAnchorsPem: string;
  issuerCertPem: string;
  issuer: Issuer;
}

/** Reads the issuer Secret and the trust-roots ConfigMap through the API (for when they are not mounted). */
export async function readKubeIdentity(kube: KubeClient, namespace = CONTROL_NAMESPACE): Promise<KubeIdentity> {
  const hint = "run 'mesh install --platform kubernetes' (it renders the identity), or check the namespace";
  const secret = await kube.read<{ apiVersion: string; data?: Record<string, string> }>({ apiVersion: 'v1', kind: 'Secret', name: ISSUER_SECRET, namespace });
  const roots = await kube.read<{ apiVersion: string; data?: Record<string, string> }>({ apiVersion: 'v1', kind: 'ConfigMap', name: TRUST_ROOTS_CONFIGMAP, namespace });
  if (!secret?.data?.['tls.crt'] || !secret.data['tls.key']) throw new MeshError(`secret ${namespace}/${ISSUER_SECRET} with tls.crt and tls.key is missing`, hint);
  if (!roots?.data?.['ca-bundle.crt']) throw new MeshError(`configmap ${namespace}/${TRUST_ROOTS_CONFIGMAP} with ca-bundle.crt is missing`, hint);
  const issuerCertPem = Buffer.from(secret.data['tls.crt'], 'base64').toString('utf8');
  const keyPem = Buffer.from(secret.data['tls.key'], 'base64').toString('utf8');
  let issuer: Issuer;
  try {
    issuer = new Issuer({ certPem: issuerCertPem, keyPem });
  } catch (err) {
    throw new MeshError(`the issuer in secret ${namespace}/${ISSUER_SECRET} cannot be read: ${(err as Error).message}`, hint);
  }
  return { trustAnchorsPem: roots.data['ca-bundle.crt'], issuerCertPem, issuer };
}

/**
 * The identity as read, for the control plane; on a reload, as the local platform does, never an issuer no proxy
 * would trust (or half of an edit in progress). Checked only when it changed: watches call for many a reload of
 * the same identity, and the check costs CPU the control plane's own certificate renewal needs.
 */
function checker(certLifetimeMs: number) {
  let accepted = '';
  return (id: KubeIdentity, reload: boolean): ControlIdentity => {
    const epoch = identityEpoch(id.trustAnchorsPem, id.issuerCertPem);
    const errors = reload && epoch !== accepted ? identityErrors({ anchorsPem: id.trustAnchorsPem, issuerCertPem: id.issuerCertPem, issuerKeyPem: id.issuer.issuer.keyPem }) : [];
    if (errors.length) throw new MeshError(errors.join('; '));
    accepted = epoch;
    return { ...id, certLifetimeMs };
  };
}

/**
 * As the mesh-control pod has it: the Secret and ConfigMap mounted under dir (issuer/, trust-roots/), watched by
 * polling (the kubelet swaps a mounted Secret's files within about a minute of a change).
 */
export function mountedIdentity(dir: string, pollMs: number, certLifetimeMs: number): IdentitySource {
  const files = [join(dir, 'trust-roots', 'ca-bundle.crt'), join(dir, 'issuer', 'tls.crt'), join(dir, 'issuer', 'tls.key')];
  const hint = 'mount it (see the mesh-control Deployment) or set the MESH_*_DIR variables';
  const readAll = () => Promise.all(files.map((f) => readFile(f, 'utf8')));
  const usable = checker(certLifetimeMs);
  // What the last good read() saw: a change that could not be read yet (half written) is signalled again.
  let seen = '';
  return {
    async read(reload) {
      let texts: string[];
      try {
        texts = await readAll();
      } catch (err) {
        throw new MeshError(`cannot read the identity under ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, hint);
      }
      const [trustAnchorsPem, issuerCertPem, keyPem] = texts as [string, string, string];
      let issuer: Issuer;
      try {
        issuer = new Issuer({ certPem: issuerCertPem, keyPem });
      } catch (err) {
        throw new MeshError(`the issuer under ${dir} cannot be read: ${(err as Error).message}`, hint);
      }
      seen = texts.join('\n');
      return usable({ trustAnchorsPem, issuerCertPem, issuer }, reload);
    },
    async watch(changed) {
      const timer = setInterval(() => {
        void readAll().then((now) => {
          if (now.join('\n') !== seen) changed();
        }, () => {});
      }, pollMs);
      timer.unref();
      return () => clearInterval(timer);
    },
  };
}

/** Outside a pod (mesh control --kubeconfig): read, and watched, through the API. */
export function apiIdentity(kube: KubeClient, certLifetimeMs: number, o: { namespace?: string; log?: (line: string) => void } = {}): IdentitySource {
  const namespace = o.namespace ?? CONTROL_NAMESPACE;
  const usable = checker(certLifetimeMs);
  return {
    read: async (reload) => usable(await readKubeIdentity(kube, namespace), reload),
    async watch(changed) {
      const one = (collection: string, name: string) =>
        new ListWatch(kube.kc, `/api/v1/namespaces/${namespace}/${collection}?fieldSelector=${encodeURIComponent(`metadata.name=${name}`)}`, changed, { log: o.log });
      const watches = [one('secrets', ISSUER_SECRET), one('configmaps', TRUST_ROOTS_CONFIGMAP)];
      await Promise.all(watches.map((w) => w.start()));
      return () => watches.forEach((w) => w.stop());
    },
  };
}

const SA_USER = /^system:serviceaccount:([^:]+):([^:]+)$/;

/**
 * The ControlAuth.bootstrap check: a TokenReview of the bearer (audience mesh.io) must say it is the token of exactly
 * namespace/serviceAccount. Answers are cached briefly so a restart of many proxies does not flood the API server.
 */
export function tokenReviewBootstrap(kube: KubeClient, o: { audience?: string; cacheMs?: number; log?: (line: string) => void } = {}) {
  const cache = new Map<string, { at: number; user?: string }>();
  const cacheMs = o.cacheMs ?? 60_000;
  const review = async (token: string): Promise<string | undefined> => {
    const key = createHash('sha256').update(token).digest('hex');
    const hit = cache.get(key);
    if (hit && Date.now() - hit.at < cacheMs) return hit.user;
    const { AuthenticationV1Api } = await import('@kubernetes/client-node');
    const api = kube.kc.makeApiClient(AuthenticationV1Api);
    const r = await api.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [o.audience ?? TOKEN_AUDIENCE] } } });
    const user = r.status?.authenticated ? r.status.user?.username : undefined;
    if (!user) o.log?.(`control: a token was refused by the TokenReview: ${r.status?.error ?? 'not authenticated'}`);
    if (cache.size > 10_000) cache.clear();
    cache.set(key, { at: Date.now(), user });
    return user;
  };
  return async (bearer: string, namespace: string, serviceAccount: string): Promise<boolean> => {
    const m = SA_USER.exec((await review(bearer)) ?? '');
    return !!m && m[1] === namespace && m[2] === serviceAccount;
  };
}

/** The injector webhook's serving certificate from its Secret (mesh-webhook-tls), for when it is not mounted. */
export async function readKubeWebhookTls(kube: KubeClient, namespace = CONTROL_NAMESPACE): Promise<{ cert: string; key: string }> {
  const secret = await kube.read<{ apiVersion: string; data?: Record<string, string> }>({ apiVersion: 'v1', kind: 'Secret', name: WEBHOOK_SECRET, namespace });
  if (!secret?.data?.['tls.crt'] || !secret.data['tls.key']) {
    throw new MeshError(`secret ${namespace}/${WEBHOOK_SECRET} with tls.crt and tls.key is missing`, "run 'mesh install --platform kubernetes' (it renders the webhook certificate)");
  }
  const text = (k: string) => Buffer.from(secret.data![k]!, 'base64').toString('utf8');
  return { cert: text('tls.crt'), key: text('tls.key') };
}
