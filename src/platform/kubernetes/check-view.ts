// The cluster as `mesh check --platform kubernetes` sees it (src/check/kube.ts holds the checks).
import type { KubernetesObject } from '@kubernetes/client-node';
import type { KubeCheckView, MeshedPod } from '../../check/kube.js';
import { VERSION } from '../../version.js';
import { KubeClient, type TargetOptions } from './client.js';
import { CRD_NAMES } from './crds.js';
import {
  CLIENT_CA_NAMESPACE, CONTROL_NAME, CONTROL_NAMESPACE, CONTROL_NS_LABEL, ISSUER_SECRET, PROXY_CONTAINER, PROXY_VERSION_ANNOTATION, TRUST_ROOTS_CONFIGMAP,
  WEBHOOK_NAME, WEBHOOK_SECRET,
} from './names.js';

type Obj = KubernetesObject & Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const unb64 = (s: unknown) => (typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : undefined);

export function kubeCheckView(target: TargetOptions, onConnect?: (kube: KubeClient) => void): KubeCheckView {
  let kube: KubeClient | undefined;
  const client = () => {
    if (!kube) throw new Error('the client is not initialized');
    return kube;
  };
  return {
    now: () => Date.now(),
    cliVersion: VERSION,
    controlNamespace: CONTROL_NAMESPACE,
    async connect() {
      kube = await KubeClient.connect(target);
      onConnect?.(kube);
    },
    serverVersion: () => client().version(),
    canI: (verb, group, resource, namespace) => client().canI(verb, group, resource, namespace),
    async namespaces() {
      return (await client().list<Obj>('v1', 'Namespace')).map((n) => ({ name: n.metadata?.name ?? '', labels: n.metadata?.labels ?? {} }));
    },
    async missingCrds() {
      const missing: string[] = [];
      for (const name of CRD_NAMES) if (!(await client().read({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name }))) missing.push(name);
      return missing;
    },
    async controlDeployment() {
      const d = await client().read<Obj>({ apiVersion: 'apps/v1', kind: 'Deployment', name: CONTROL_NAME, namespace: CONTROL_NAMESPACE });
      if (!d) return undefined;
      return { ready: d.status?.readyReplicas ?? 0, want: d.spec?.replicas ?? 1, version: d.metadata?.labels?.['app.kubernetes.io/version'] };
    },
    async identity() {
      const roots = await client().read<Obj>({ apiVersion: 'v1', kind: 'ConfigMap', name: TRUST_ROOTS_CONFIGMAP, namespace: CONTROL_NAMESPACE });
      const issuer = await client().read<Obj>({ apiVersion: 'v1', kind: 'Secret', name: ISSUER_SECRET, namespace: CONTROL_NAMESPACE });
      return { anchorsPem: roots?.data?.['ca-bundle.crt'], issuerCertPem: unb64(issuer?.data?.['tls.crt']), issuerKeyPem: unb64(issuer?.data?.['tls.key']) };
    },
    async webhook() {
      const hook = await client().read<Obj>({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', name: WEBHOOK_NAME });
      const tls = await client().read<Obj>({ apiVersion: 'v1', kind: 'Secret', name: WEBHOOK_SECRET, namespace: CONTROL_NAMESPACE });
      return { configured: !!hook, caBundlePem: unb64(hook?.webhooks?.[0]?.clientConfig?.caBundle), servingCertPem: unb64(tls?.data?.['tls.crt']) };
    },
    async clientCaBinding() {
      const b = await client().read<Obj>({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', name: `mesh:${CONTROL_NAME}:client-ca`, namespace: CLIENT_CA_NAMESPACE });
      return b ? { roleRef: b.roleRef ?? {}, subjects: b.subjects ?? [] } : undefined;
    },
    async meshedPods() {
      const pods = await client().list<Obj>('v1', 'Pod', { labelSelector: `${CONTROL_NS_LABEL}=${CONTROL_NAMESPACE}` });
      return pods.map((p): MeshedPod => {
        const statuses = [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])] as { name: string; ready?: boolean }[];
        const proxy = statuses.find((s) => s.name === PROXY_CONTAINER);
        const spec = [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])].find((x: Obj) => x.name === PROXY_CONTAINER) as Obj | undefined;
        const anchors = (spec?.env as { name: string; value?: string }[] | undefined)?.find((e) => e.name === 'MESH_TRUST_ANCHORS')?.value;
        return {
          namespace: p.metadata?.namespace ?? '', name: p.metadata?.name ?? '',
          proxyVersion: p.metadata?.annotations?.[PROXY_VERSION_ANNOTATION], // A pod that has not started its proxy (Pending) is not ready; a finished one (a Job's) needs none.
          proxyReady: proxy ? proxy.ready === true : p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? undefined : false,
          ...(anchors ? { trustAnchorsPem: anchors } : {}),
        };
      }).sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
    },
  };
}
