// Where `mesh route` and `mesh policy` read and write on Kubernetes: the Route and Policy custom resources
// (so kubectl and GitOps tools see them), with live versions from the pods' `app` and `version` labels.
import type { EndpointRecord } from '../../api/types.js';
import { formatIdentity } from '../../identity/spiffe.js';
import type { ConfigEdit, RouteStore, StoredConfig } from '../local/route-store.js';
import type { PolicyStore } from '../local/policy-store.js';
import { WRITE_ATTEMPTS } from '../local/admin.js';
import { ConflictError, type KubeClient } from './client.js';
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

/** Attempts of a read-modify-write before giving up on a resource others keep changing (as on the local platform). */

/**
 * One kind of mesh resource as a config document. Writes are read-modify-write under optimistic concurrency, as
 * kubectl edit does: each changed object is created, replaced or deleted at the resourceVersion it was read at, so
 * a concurrent change is never overwritten; on a 409 the edit runs again on a fresh read.
 */
class ResourceDocument {
  constructor(private readonly kube: KubeClient, private readonly kind: 'Route' | 'Policy', private readonly key: 'routes' | 'policies') {}

  async read(): Promise<{ docs: Doc[]; stored: StoredConfig; live: Map<string, MeshResource> }> {
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
    // Every object as served, invalid ones too: a write replaces them at their resourceVersion rather than recreating.
    const live = new Map(items.map((o) => [`${o.metadata?.namespace}/${o.metadata?.name}`, o]));
    return { docs, stored: { value: { [this.key]: docs }, version: list.metadata?.resourceVersion ?? '' }, live };
  }

  /** Runs edit on the current document and writes the result; undefined when the edit changed nothing. */
  async update(edit: ConfigEdit): Promise<StoredConfig | undefined> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.read();
      const value = edit(current.stored.value);
      if (value === undefined) return undefined;
      try {
        return await this.write(current, value);
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        if (attempt >= WRITE_ATTEMPTS) {
          throw new MeshError(`${err.object} was changed by someone else while mesh wrote it (${WRITE_ATTEMPTS} attempts)`,
            'nothing they wrote was overwritten; retry the command');
        }
      }
    }
  }

  private async write(current: { docs: Doc[]; live: Map<string, MeshResource> }, value: unknown): Promise<StoredConfig> {
    const next = ((value as Record<string, Doc[]>)[this.key] ?? []) as Doc[];
    const id = (d: Doc) => `${d.metadata.namespace}/${d.metadata.name}`;
    const old = new Map(current.docs.map((d) => [id(d), d]));
    const versions: string[] = [];
    for (const d of next) {
      const prev = old.get(id(d));
      old.delete(id(d));
      if (prev && JSON.stringify(prev.spec) === JSON.stringify(d.spec)) continue;
      const live = current.live.get(id(d));
      // Replace keeps what others set on the object (labels, annotations) and sends the resourceVersion read.
      const obj = live
        ? { ...live, apiVersion: API_VERSION, kind: this.kind, spec: d.spec }
        : { apiVersion: API_VERSION, kind: this.kind, metadata: { name: d.metadata.name, namespace: d.metadata.namespace }, spec: d.spec };
      const written = await this.kube.guardedWrite(live ? 'replace' : 'create', obj as MeshResource & { metadata: object });
      versions.push(written?.metadata?.resourceVersion ?? '');
    }
    for (const d of old.values()) {
      const live = current.live.get(id(d));
      await this.kube.guardedWrite('delete', { apiVersion: API_VERSION, kind: this.kind, metadata: { name: d.metadata.name, namespace: d.metadata.namespace, resourceVersion: live?.metadata?.resourceVersion } });
    }
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
    updateRoutes: (edit) => doc.update(edit),
    endpoints: () => podWorkloads(kube),
  };
}

export function kubePolicyStore(kube: KubeClient): PolicyStore & { waitsForProxies: boolean } {
  const doc = new ResourceDocument(kube, 'Policy', 'policies');
  return {
    waitsForProxies: false,
    policies: async () => (await doc.read()).stored,
    updatePolicies: (edit) => doc.update(edit),
    endpoints: () => podWorkloads(kube),
  };
}
