// Direct store access for tests: seed and inspect objects (and set status) without going through HTTP.
// Writes still get uids, resourceVersions, defaults, validation and watch events, but may set status freely.
import type { ResourceType } from './resources.js';
import { mergePatch } from './patch.js';
import type { ObjectStore } from './store.js';
import { isObject, type Json, type JsonObject, type KubeObject } from './types.js';
import { createObject, type VerbContext } from './verbs.js';

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  /** For namespaced kinds; defaults to "default". */
  namespace?: string;
}

const MANAGER = 'fake-kube-test';

export class FakeStore {
  constructor(private readonly inner: ObjectStore) {}

  /** The current global resourceVersion. */
  get resourceVersion(): string {
    return String(this.inner.resourceVersion);
  }

  private resolve(apiVersion: string, kind: string): { rt: ResourceType; version: string } {
    const rt = this.inner.registry.findByKind(apiVersion, kind);
    if (!rt) throw new Error(`fake kube: no resource for ${apiVersion} ${kind}`);
    return { rt, version: apiVersion.split('/').pop() ?? apiVersion };
  }

  private ns(rt: ResourceType, namespace: string | undefined): string {
    return rt.namespaced ? namespace ?? 'default' : '';
  }

  get(ref: ObjectRef): KubeObject | undefined {
    const { rt, version } = this.resolve(ref.apiVersion, ref.kind);
    const obj = this.inner.peek(rt, this.ns(rt, ref.namespace), ref.name);
    return obj && this.inner.present(rt, obj, version);
  }

  /** Objects of a kind, in one namespace or (namespace omitted) all of them. */
  list(apiVersion: string, kind: string, namespace?: string): KubeObject[] {
    const { rt, version } = this.resolve(apiVersion, kind);
    return this.inner.list(rt, namespace).map((o) => this.inner.present(rt, o, version));
  }

  /** Creates like POST (same validation and errors, thrown as StatusError), but keeps any status given. */
  create(obj: JsonObject): KubeObject {
    const { rt, version } = this.resolve(String(obj.apiVersion ?? ''), String(obj.kind ?? ''));
    const meta = isObject(obj.metadata) ? obj.metadata : {};
    const ctx: VerbContext = { store: this.inner, rt, version, ns: this.ns(rt, typeof meta.namespace === 'string' ? meta.namespace : undefined), manager: MANAGER, dryRun: false };
    const created = createObject(ctx, obj).object;
    if (rt.status && obj.status !== undefined) return this.setStatus(refOf(created), obj.status);
    return created;
  }

  /** Creates or overwrites (ignoring resourceVersion), spec and status alike. */
  put(obj: JsonObject): KubeObject {
    const { rt, version } = this.resolve(String(obj.apiVersion ?? ''), String(obj.kind ?? ''));
    const meta = isObject(obj.metadata) ? obj.metadata : {};
    const name = String(meta.name ?? '');
    const ns = this.ns(rt, typeof meta.namespace === 'string' ? meta.namespace : undefined);
    const prev = this.inner.peek(rt, ns, name);
    if (!prev) return this.create(obj);
    return this.inner.write(rt, ns, name, prev, obj as KubeObject, { version, manager: MANAGER, raw: true });
  }

  /** JSON merge patch over the whole stored object, status included. Throws if the object does not exist. */
  patch(ref: ObjectRef, patch: JsonObject): KubeObject {
    const { rt, version } = this.resolve(ref.apiVersion, ref.kind);
    const ns = this.ns(rt, ref.namespace);
    const prev = this.inner.require(rt, ns, ref.name);
    const next = mergePatch(this.inner.present(rt, prev, version), patch) as KubeObject;
    return this.inner.write(rt, ns, ref.name, prev, next, { version, manager: MANAGER, raw: true });
  }

  /** Merges into .status, e.g. setStatus(deploymentRef, { readyReplicas: 2 }). */
  setStatus(ref: ObjectRef, status: Json): KubeObject {
    return this.patch(ref, { status });
  }

  /** Deletes (honouring finalizers and namespace cascade); false when it did not exist. */
  delete(ref: ObjectRef): boolean {
    const { rt, version } = this.resolve(ref.apiVersion, ref.kind);
    const ns = this.ns(rt, ref.namespace);
    if (!this.inner.peek(rt, ns, ref.name)) return false;
    this.inner.delete(rt, ns, ref.name, { version });
    return true;
  }
}

export function refOf(obj: KubeObject): ObjectRef {
  return { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name ?? '', namespace: obj.metadata.namespace };
}
