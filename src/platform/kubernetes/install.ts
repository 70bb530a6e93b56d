// Installing on a cluster: what is there already (CRDs, a previous install of ours, someone else's), server-side
// apply of the rendered objects, and the wait for the control plane; uninstall finds what install made by label.
import type { KubernetesObject, V1Deployment } from '@kubernetes/client-node';
import { MeshError } from '../../util/errors.js';
import type { KubeClient, ObjectRef } from './client.js';
import { CRD_NAMES } from './crds.js';
import { anchorFingerprints, type IdentityValues, type WebhookValues } from './identity.js';
import type { KubeObject } from './manifests.js';
import {
  CLIENT_CA_NAMESPACE, CONTROL_NAME, CONTROL_NAMESPACE, ISSUER_SECRET, MANAGED_BY, OWNED_SELECTOR, PART_OF, TRUST_ROOTS_CONFIGMAP, WEBHOOK_SECRET,
} from './names.js';

interface Secret extends KubernetesObject { data?: Record<string, string> }
interface ConfigMap extends KubernetesObject { data?: Record<string, string> }

export interface ExistingInstall {
  identity?: IdentityValues;
  webhook?: WebhookValues;
}

const ours = (o: KubernetesObject | undefined) => o?.metadata?.labels?.[PART_OF] === 'mesh' && o?.metadata?.labels?.[MANAGED_BY] === 'mesh';
const unb64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');

/** The mesh installed on a cluster, as far as it can be read: nothing (`undefined`), or its identity and webhook. */
export interface InstalledMesh {
  /** The installed trust anchors' fingerprints (empty if the ConfigMap holds none that parse). */
  anchors: string[];
  identity?: IdentityValues;
  webhook?: WebhookValues;
}

/**
 * Reads what a previous install of ours left in mesh-system (undefined when there is none); refuses a namespace of
 * that name that is not ours.
 */
export async function readInstalled(kube: KubeClient): Promise<InstalledMesh | undefined> {
  const ns = await kube.read({ apiVersion: 'v1', kind: 'Namespace', name: CONTROL_NAMESPACE });
  if (!ns) return undefined;
  if (!ours(ns)) {
    throw new MeshError(`namespace ${CONTROL_NAMESPACE} exists but is not labelled as mesh's (${PART_OF}=mesh)`,
      'another install is there: remove it, or point --context at another cluster');
  }
  const roots = await kube.read<ConfigMap>({ apiVersion: 'v1', kind: 'ConfigMap', name: TRUST_ROOTS_CONFIGMAP, namespace: CONTROL_NAMESPACE });
  const anchorsPem = roots?.data?.['ca-bundle.crt'];
  if (!anchorsPem) return undefined;
  const issuer = await kube.read<Secret>({ apiVersion: 'v1', kind: 'Secret', name: ISSUER_SECRET, namespace: CONTROL_NAMESPACE });
  const webhook = await kube.read<Secret>({ apiVersion: 'v1', kind: 'Secret', name: WEBHOOK_SECRET, namespace: CONTROL_NAMESPACE });
  let anchors: string[];
  try {
    anchors = anchorFingerprints(anchorsPem);
  } catch {
    anchors = [];
  }
  const i = issuer?.data;
  const w = webhook?.data;
  return {
    anchors,
    identity: i?.['tls.crt'] && i['tls.key'] ? { trustAnchorsPem: anchorsPem, issuerCertPem: unb64(i['tls.crt']), issuerKeyPem: unb64(i['tls.key']) } : undefined,
    webhook: w?.['tls.crt'] && w['tls.key'] && w['ca.crt'] ? { certPem: unb64(w['tls.crt']), keyPem: unb64(w['tls.key']), caPem: unb64(w['ca.crt']) } : undefined,
  };
}

/**
 * The identity and webhook certificate an install (applied or rendered) must carry: the given files, else those of
 * the mesh already installed, so a second install never replaces the trust anchors the running proxies hold.
 * Refuses files of another trust anchor than the installed one, and an install whose issuer cannot be read.
 */
export function keepInstalled(installed: InstalledMesh | undefined, given: IdentityValues | undefined, contextName: string): ExistingInstall {
  if (!installed) return {};
  if (given && installed.anchors.join() !== anchorFingerprints(given.trustAnchorsPem).join()) {
    throw new MeshError(`a mesh with another trust anchor is installed on ${contextName}`,
      'pass its trust anchor and issuer with --identity-* files, or remove it first with mesh uninstall --apply');
  }
  if (!given && !installed.identity) {
    throw new MeshError(`mesh is installed on ${contextName} but its issuer (${CONTROL_NAMESPACE}/${ISSUER_SECRET}) cannot be read`,
      'pass the installed trust anchor and issuer with the --identity-* files, so the proxies keep trusting the control plane');
  }
  return { identity: given ? undefined : installed.identity, webhook: installed.webhook };
}

/**
 * Refuses to install over something that is not ours or over another mesh (another trust anchor), and returns the
 * identity of our own previous install so a re-apply changes nothing.
 */
export async function preflight(kube: KubeClient, given: IdentityValues | undefined): Promise<ExistingInstall> {
  for (const name of CRD_NAMES) {
    if (!(await kube.read({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name }))) {
      throw new MeshError(`the mesh CRDs are not installed (${name} is missing)`, 'run mesh install --crds first (mesh install --crds --apply)');
    }
  }
  return keepInstalled(await readInstalled(kube), given, kube.contextName);
}

/** Applies in order (namespace first); returns how many objects changed (by resourceVersion). */
export async function applyAll(kube: KubeClient, objects: KubeObject[]): Promise<{ changed: number; total: number }> {
  let changed = 0;
  for (const obj of objects) {
    const ref = refOf(obj);
    const before = await kube.read(ref);
    const after = await kube.apply(obj as KubernetesObject);
    if (before?.metadata?.resourceVersion !== after.metadata?.resourceVersion) changed++;
  }
  return { changed, total: objects.length };
}

/** Waits until the control-plane Deployment has all its replicas ready (observed the current generation). */
export async function waitForControlPlane(kube: KubeClient, timeoutMs: number, everyMs = 250): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const d = await kube.read<V1Deployment>({ apiVersion: 'apps/v1', kind: 'Deployment', name: CONTROL_NAME, namespace: CONTROL_NAMESPACE });
    const want = d?.spec?.replicas ?? 1;
    const s = d?.status;
    const current = s?.observedGeneration === undefined || s.observedGeneration >= (d?.metadata?.generation ?? 0);
    if (d && current && (s?.readyReplicas ?? 0) >= want) return;
    if (Date.now() >= deadline) {
      throw new MeshError(`the control plane is not ready after ${Math.round(timeoutMs / 1000)}s (${s?.readyReplicas ?? 0}/${want} replicas ready)`,
        `see kubectl -n ${CONTROL_NAMESPACE} describe deployment ${CONTROL_NAME}; mesh install --apply again resumes`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const refOf = (o: KubernetesObject): ObjectRef => ({ apiVersion: o.apiVersion!, kind: o.kind!, name: o.metadata!.name!, namespace: o.metadata?.namespace });

/** The kinds install creates, in delete order: the webhook first (so no pod waits on it), the namespace last. */
const INSTALLED_KINDS: { apiVersion: string; kind: string; namespaced: boolean; namespace?: string }[] = [
  { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', namespaced: false },
  { apiVersion: 'apps/v1', kind: 'Deployment', namespaced: true },
  { apiVersion: 'v1', kind: 'Service', namespaced: true },
  { apiVersion: 'v1', kind: 'Secret', namespaced: true },
  { apiVersion: 'v1', kind: 'ConfigMap', namespaced: true },
  { apiVersion: 'v1', kind: 'ServiceAccount', namespaced: true },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', namespaced: false },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', namespaced: false },
  // The one object outside mesh-system: mesh-control's binding to read the cluster's client CA.
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', namespaced: true, namespace: CLIENT_CA_NAMESPACE },
];

/** Objects in mesh-system a namespace controller makes on its own (OpenShift's fork: its service CA too); they go with the namespace. */
const NAMESPACE_DEFAULTS = new Set(['ServiceAccount/default', 'ConfigMap/kube-root-ca.crt', 'ConfigMap/openshift-service-ca.crt']);

export interface UninstallPlan {
  /** What to delete, in order; each has only apiVersion, kind and metadata (name, namespace). */
  objects: KubernetesObject[];
  /** Objects found in mesh-system that mesh did not create: the namespace is then kept. */
  foreign: string[];
}

/** Finds what install (and with crds, install --crds) created, by label, and nothing else. */
export async function planUninstall(kube: KubeClient, o: { crds: boolean }): Promise<UninstallPlan> {
  const objects: KubernetesObject[] = [];
  const foreign: string[] = [];
  const stub = (x: KubernetesObject): KubernetesObject => ({
    apiVersion: x.apiVersion, kind: x.kind, metadata: { name: x.metadata?.name, ...(x.metadata?.namespace ? { namespace: x.metadata.namespace } : {}) },
  });
  const ns = await kube.read({ apiVersion: 'v1', kind: 'Namespace', name: CONTROL_NAMESPACE });
  for (const k of INSTALLED_KINDS) {
    if (k.namespace) {
      for (const x of await kube.list(k.apiVersion, k.kind, { namespace: k.namespace, labelSelector: OWNED_SELECTOR })) objects.push(stub(x));
    } else if (k.namespaced) {
      if (!ours(ns)) continue;
      for (const x of await kube.list(k.apiVersion, k.kind, { namespace: CONTROL_NAMESPACE })) {
        if (ours(x)) objects.push(stub(x));
        else if (!NAMESPACE_DEFAULTS.has(`${k.kind}/${x.metadata?.name}`)) foreign.push(`${k.kind.toLowerCase()}/${x.metadata?.name}`);
      }
    } else {
      for (const x of await kube.list(k.apiVersion, k.kind, { labelSelector: OWNED_SELECTOR })) objects.push(stub(x));
    }
  }
  if (ours(ns) && !foreign.length) objects.push(stub(ns!));
  if (o.crds) {
    for (const x of await kube.list('apiextensions.k8s.io/v1', 'CustomResourceDefinition', { labelSelector: OWNED_SELECTOR })) objects.push(stub(x));
  }
  return { objects, foreign };
}

export async function deleteAll(kube: KubeClient, objects: KubernetesObject[]): Promise<number> {
  let n = 0;
  for (const x of objects) if (await kube.delete(refOf(x))) n++;
  return n;
}
