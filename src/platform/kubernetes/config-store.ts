// Where `mesh route` and `mesh policy` read and write on Kubernetes: the Route and Policy custom resources
// (so kubectl and GitOps tools see them), with live versions from the pods' `app` and `version` labels.
import type { EndpointRecord } from '../../api/types.js';
import { formatIdentity } from '../../identity/spiffe.js';
import { ConfigConflict, type ConfigStore, type EditableConfig, type StoredConfig } from '../../api/config-store.js';
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

interface Read {
  docs: Doc[];
  /** Every object as served, invalid ones too: a write replaces them at their resourceVersion rather than recreating. */
  live: Map<string, MeshResource>;
}

/**
 * One kind of mesh resource as a config document. A write is made at what was read, as kubectl edit does: each
 * changed object is created, replaced or deleted at the resourceVersion it was read at, so a concurrent change is
 * never overwritten (ConfigConflict; updateConfig reads again and retries).
 */
class ResourceDocument implements ConfigStore {
  /** What each document handed out by get was read from, for the put made at it. */
  private readonly reads = new WeakMap<StoredConfig, Read>();

  constructor(private readonly kube: KubeClient, private readonly kind: 'Route' | 'Policy', readonly name: 'routes' | 'policies') {}

  async get(): Promise<StoredConfig> {
    const { stored, ...read } = await this.read();
    this.reads.set(stored, read);
    return stored;
  }

  async put(value: unknown, at: StoredConfig): Promise<StoredConfig> {
    const read = this.reads.get(at);
    if (!read) throw new Error('a Kubernetes config document is written at a version this store read');
    try {
      return await this.write(read, value);
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
      throw new ConfigConflict(err.message, 'read it again and retry', `${err.object} was changed by someone else while mesh wrote it`);
    }
  }

  private async read(): Promise<Read & { stored: StoredConfig }> {
    const path = `/apis/${API_VERSION}/${this.name}`;
    let list: { metadata?: { resourceVersion?: string }; items?: MeshResource[] };
    try {
      list = await getJson(this.kube.kc, path);
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) {
        throw new MeshError(`the cluster does not serve ${this.name}.${CRD_GROUP} (context ${this.kube.contextName})`, "install them: 'mesh install --crds --apply --platform kubernetes'");
      }
      throw this.kube.wrap(err, `list ${this.name}.${CRD_GROUP}`);
    }
    const items = list.items ?? [];
    const cfg = crdConfig(this.kind === 'Route' ? items : [], this.kind === 'Policy' ? items : [], (l) => process.stderr.write(`‼ ${l}\n`));
    const docs = (cfg[this.name] as unknown as Record<string, Doc[]>)[this.name]!;
    const live = new Map(items.map((o) => [`${o.metadata?.namespace}/${o.metadata?.name}`, o]));
    return { docs, stored: { value: { [this.name]: docs }, version: list.metadata?.resourceVersion ?? '' }, live };
  }

  private async write(current: Read, value: unknown): Promise<StoredConfig> {
    const next = ((value as Record<string, Doc[]>)[this.name] ?? []) as Doc[];
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
    return { value: { [this.name]: next }, version };
  }
}

/** Kubernetes stores: the proxies pick changes up from the control plane's watch, so the CLI does not wait for them. */
export function kubeConfigStore(kube: KubeClient, name: 'routes' | 'policies'): EditableConfig {
  const doc = new ResourceDocument(kube, name === 'routes' ? 'Route' : 'Policy', name);
  return {
    name,
    waitsForProxies: false,
    get: () => doc.get(),
    put: (value, at) => doc.put(value, at),
    endpoints: () => podWorkloads(kube),
  };
}
