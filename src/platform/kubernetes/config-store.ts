// Where `mesh route` and `mesh policy` read and write on Kubernetes: the Route and Policy custom resources
// (so kubectl and GitOps tools see them), with live versions from the pods' `app` and `version` labels.
import type { EndpointRecord } from '../../control/registry.js';
import { formatIdentity } from '../../identity/spiffe.js';
import type { RouteStore, StoredConfig } from '../local/route-store.js';
import type { PolicyStore } from '../local/policy-store.js';
import type { KubeClient } from './client.js';
import { CRD_GROUP, CRD_VERSION, PROXY_PORTS } from './names.js';
import { crdConfig, type MeshResource, type Pod } from './resources.js';
import { getJson } from './list-watch.js';
import { MeshError } from '../../util/errors.js';

const API_VERSION = `${CRD_GROUP}/${CRD_VERSION}`;

type Doc = { apiVersion: string; kind: string; metadata: { name: string; namespace: string }; spec: unknown };

/** Workloads as the CLI needs them to know live versions: pods labelled app (the service) and version. */
export async function podWorkloads(kube: KubeClient, trustDomain = 'cluster.local'): Promise<EndpointRecord[]> {
  const pods = (await kube.list('v1', 'Pod', { labelSelector: 'app' })) as unknown as Pod[];
  return pods.filter((p) => !p.metadata?.deletionTimestamp).map((p) => {
    const namespace = p.metadata?.namespace ?? 'default';
    return {
      instance: `${p.metadata?.name}.${namespace}`,
      namespace,
      service: p.metadata!.labels!.app!,
      version: p.metadata?.labels?.version || 'default',
      address: p.status?.podIP ?? '',
      port: PROXY_PORTS.inbound,
      identity: formatIdentity({ trustDomain, namespace, serviceAccount: p.spec?.serviceAccountName || 'default' }),
      registeredAt: new Date(0).toISOString(),
    };
  });
}

/**
 * One kind of mesh resource as a config document: read lists them all; write applies (server-side, field manager
 * mesh) the ones that changed and deletes the ones the document no longer has. The version is a resourceVersion.
 */
class ResourceDocument {
  constructor(private readonly kube: KubeClient, private readonly kind: 'Route' | 'Policy', private readonly key: 'routes' | 'policies') {}

  async read(): Promise<{ docs: Doc[]; stored: StoredConfig }> {
    const path = `/apis/${API_VERSION}/${this.key}`;
    let list: { metadata?: { resourceVersion?: string }; items?: MeshResource[] };
    try {
      list = await getJson(this.kube.kc, path);
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) {
        throw new MeshError(`the cluster does not serve ${this.key}.${CRD_GROUP} (context ${this.kube.contextName})`, "install them: 'mesh install --crds --apply --platform kubernetes'");
      }
      throw this.kube.wrap(err, `list ${this.key}.${CRD_GROUP}`);
    }
    const items = list.items ?? [];
    const cfg = crdConfig(this.kind === 'Route' ? items : [], this.kind === 'Policy' ? items : [], (l) => process.stderr.write(`‼ ${l}\n`));
    const docs = (cfg[this.key] as unknown as Record<string, Doc[]>)[this.key]!;
    return { docs, stored: { value: { [this.key]: docs }, version: list.metadata?.resourceVersion ?? '' } };
  }

  async write(value: unknown): Promise<StoredConfig> {
    const { docs: before } = await this.read();
    const next = ((value as Record<string, Doc[]>)[this.key] ?? []) as Doc[];
    const id = (d: Doc) => `${d.metadata.namespace}/${d.metadata.name}`;
    const old = new Map(before.map((d) => [id(d), d]));
    const versions: string[] = [];
    for (const d of next) {
      const prev = old.get(id(d));
      old.delete(id(d));
      if (prev && JSON.stringify(prev.spec) === JSON.stringify(d.spec)) continue;
      const applied = await this.kube.apply({ apiVersion: API_VERSION, kind: this.kind, metadata: { name: d.metadata.name, namespace: d.metadata.namespace }, spec: d.spec } as never);
      versions.push((applied as MeshResource).metadata?.resourceVersion ?? '');
    }
    for (const d of old.values()) await this.kube.delete({ apiVersion: API_VERSION, kind: this.kind, name: d.metadata.name, namespace: d.metadata.namespace });
    // A delete answers with no new resourceVersion of its own: the collection's, read again, stands for it.
    const version = versions.sort((a, b) => Number(b) - Number(a))[0] || (await this.read()).stored.version;
    return { value: { [this.key]: next }, version };
  }
}

/** Kubernetes stores: the proxies pick changes up from the control plane's watch, so the CLI does not wait for them. */
export function kubeRouteStore(kube: KubeClient): RouteStore & { waitsForProxies: boolean } {
  const doc = new ResourceDocument(kube, 'Route', 'routes');
  return {
    waitsForProxies: false,
    routes: async () => (await doc.read()).stored,
    putRoutes: (value) => doc.write(value),
    endpoints: () => podWorkloads(kube),
  };
}

export function kubePolicyStore(kube: KubeClient): PolicyStore & { waitsForProxies: boolean } {
  const doc = new ResourceDocument(kube, 'Policy', 'policies');
  return {
    waitsForProxies: false,
    policies: async () => (await doc.read()).stored,
    putPolicies: (value) => doc.write(value),
    endpoints: () => podWorkloads(kube),
  };
}
