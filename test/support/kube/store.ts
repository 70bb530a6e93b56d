// The object store: one global resourceVersion counter, immutable stored objects, the write pipeline every verb
// goes through (identity, server-owned metadata, defaults, validation, generation, managedFields) and the bounded
// event history that watches replay from.
import { randomUUID } from 'node:crypto';
import { applyDefaults, metadataErrors, nameErrors, specErrors } from './defaults.js';
import { trackUpdate } from './managed-fields.js';
import { apiVersionOf, crdToResource, ResourceRegistry, type ResourceType } from './resources.js';
import { pruneAndValidate } from './schema.js';
import type { Matcher } from './selectors.js';
import { clone, deepEqual, errors, isObject, nowTimestamp, type JsonObject, type KubeObject, type StatusCause } from './types.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  type: EventType;
  rv: number;
  group: string;
  plural: string;
  namespace: string;
  object: KubeObject;
  /** State before the change (MODIFIED/DELETED), so watches can turn selector transitions into ADDED/DELETED. */
  prev?: KubeObject;
}

export interface WriteOptions {
  /** API version the client addressed; responses and managedFields use it. */
  version: string;
  manager: string;
  dryRun?: boolean;
  subresource?: 'status';
  /** Test seeding: write spec and status together, ignoring status-subresource rules. */
  raw?: boolean;
  /** Server-side apply already computed managedFields. */
  applied?: boolean;
}

const NAMESPACES = { group: '', plural: 'namespaces' };

export class ObjectStore {
  readonly registry = new ResourceRegistry();
  private rv = 0;
  private readonly objects = new Map<string, KubeObject>();
  private history: StoreEvent[] = [];
  private compactedRv = 0;
  private readonly listeners = new Set<(e: StoreEvent) => void>();
  private readonly removedListeners = new Set<(rt: ResourceType) => void>();

  constructor(private readonly historyLimit = 1000) {}

  get resourceVersion(): number {
    return this.rv;
  }

  /** Events after rv, or 'expired' when some of them were already dropped from the history. */
  eventsSince(rv: number): StoreEvent[] | 'expired' {
    if (rv < this.compactedRv) return 'expired';
    return this.history.filter((e) => e.rv > rv);
  }

  get oldestAvailableRv(): number {
    return this.compactedRv + 1;
  }

  /** Drops all history so any watch resuming from an older resourceVersion gets 410 Gone. */
  compact(): void {
    this.history = [];
    this.compactedRv = this.rv;
  }

  subscribe(fn: (e: StoreEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Called when a CRD's resource disappears, so its open watches can end like on a real server. */
  onResourceRemoved(fn: (rt: ResourceType) => void): () => void {
    this.removedListeners.add(fn);
    return () => this.removedListeners.delete(fn);
  }

  private key(rt: ResourceType, ns: string, name: string): string {
    return [rt.group, rt.plural, rt.namespaced ? ns : '', name].join('\u0000');
  }

  /** The stored object itself: callers must not mutate it. */
  peek(rt: ResourceType, ns: string, name: string): KubeObject | undefined {
    return this.objects.get(this.key(rt, ns, name));
  }

  /** A copy of obj as served under the given version. */
  present(rt: ResourceType, obj: KubeObject, version: string): KubeObject {
    return { ...clone(obj), apiVersion: apiVersionOf(rt, version), kind: rt.kind };
  }

  require(rt: ResourceType, ns: string, name: string): KubeObject {
    const obj = this.peek(rt, ns, name);
    if (!obj) throw errors.notFound(rt, name);
    return obj;
  }

  /** Objects of a resource (in one namespace, or all), in the API server's key order: namespace, then name. */
  list(rt: ResourceType, ns: string | undefined, match: Matcher = () => true): KubeObject[] {
    const prefix = [rt.group, rt.plural, ''].join('\u0000');
    const nsPrefix = rt.namespaced && ns ? prefix + ns + '\u0000' : prefix;
    return [...this.objects.entries()]
      .filter(([k, o]) => k.startsWith(nsPrefix) && match(o))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => o);
  }

  namespaceExists(ns: string): boolean {
    const nsRt = this.registry.find('', 'v1', 'namespaces');
    return nsRt !== undefined && this.peek(nsRt, '', ns) !== undefined;
  }

  /**
   * Validates and stores next as the new state of (rt, ns, name), prev being the current state (undefined on create).
   * Returns the object as stored (or as it would be, on dry run), presented in opts.version.
   */
  write(rt: ResourceType, ns: string, name: string, prev: KubeObject | undefined, body: KubeObject, opts: WriteOptions): KubeObject {
    let next = clone(body);
    if (prev && opts.subresource === 'status') {
      const status = next.status;
      next = clone(prev);
      if (status === undefined) delete next.status;
      else next.status = status;
    }
    next.apiVersion = apiVersionOf(rt, opts.version);
    next.kind = rt.kind;
    const meta = (next.metadata = isObject(next.metadata) ? next.metadata : {});
    meta.name = name;
    if (rt.namespaced) meta.namespace = ns;
    else delete meta.namespace;
    delete meta.resourceVersion;
    delete meta.selfLink;
    if (prev) {
      meta.uid = prev.metadata.uid;
      meta.creationTimestamp = prev.metadata.creationTimestamp;
      if (prev.metadata.deletionTimestamp) meta.deletionTimestamp = prev.metadata.deletionTimestamp;
      else delete meta.deletionTimestamp;
      if (rt.status && !opts.raw && opts.subresource !== 'status') {
        if (prev.status === undefined) delete next.status;
        else next.status = clone(prev.status);
      }
    } else {
      meta.uid = randomUUID();
      meta.creationTimestamp = nowTimestamp();
      delete meta.deletionTimestamp;
      if (rt.status && !opts.raw) delete next.status;
      if (rt.namespaced && !this.namespaceExists(ns)) throw errors.notFound(NAMESPACES, ns);
    }
    applyDefaults(rt, next, prev);
    next = this.validate(rt, next, prev, opts);
    if (isCrdType(rt)) crdStatus(next, prev);
    this.setGeneration(rt, next, prev);
    if (!opts.applied) trackUpdate(prev, next, opts.manager, next.apiVersion, opts.subresource);

    if (prev && deepEqual(stripVolatile(prev), stripVolatile(next))) return this.present(rt, prev, opts.version);
    if (opts.dryRun) {
      if (prev) next.metadata.resourceVersion = prev.metadata.resourceVersion;
      return this.present(rt, next, opts.version);
    }
    // The last finalizer removed from an object being deleted completes the deletion.
    if (prev?.metadata.deletionTimestamp && !next.metadata.finalizers?.length) {
      return this.present(rt, this.commit(rt, 'DELETED', next, prev), opts.version);
    }
    if (isCrdType(rt)) this.registry.registerCrd(next);
    return this.present(rt, this.commit(rt, prev ? 'MODIFIED' : 'ADDED', next, prev), opts.version);
  }

  private validate(rt: ResourceType, next: KubeObject, prev: KubeObject | undefined, opts: WriteOptions): KubeObject {
    const name = next.metadata.name ?? '';
    const causes: StatusCause[] = [];
    if (!prev) {
      for (const msg of nameErrors(name, rt.nameRule)) {
        causes.push({ reason: 'FieldValueInvalid', field: 'metadata.name', message: `Invalid value: "${name}": ${msg}` });
      }
    }
    causes.push(...metadataErrors(next), ...specErrors(rt, next, prev));
    const schema = rt.schemas?.[opts.version] ?? rt.schemas?.[rt.versions[0]];
    if (schema) {
      const { value, causes: schemaCauses } = pruneAndValidate(next, schema);
      next = value as KubeObject;
      causes.push(...schemaCauses);
    }
    if (causes.length) throw errors.invalid(rt.kind, rt.group, name, causes);
    if (isCrdType(rt)) crdToResource(next);
    return next;
  }

  private setGeneration(rt: ResourceType, next: KubeObject, prev: KubeObject | undefined): void {
    if (!rt.generation) {
      if (prev?.metadata.generation !== undefined) next.metadata.generation = prev.metadata.generation;
      else delete next.metadata.generation;
      return;
    }
    const specOf = (o: KubeObject) => {
      const { metadata: _m, status: _s, ...rest } = o;
      return rt.status ? rest : { ...rest, status: o.status ?? null };
    };
    const prevGen = prev?.metadata.generation ?? 0;
    next.metadata.generation = !prev ? 1 : deepEqual(specOf(prev), specOf(next)) ? prevGen : prevGen + 1;
  }

  /** Deletes an object (or starts its deletion, when it has finalizers); namespaces and CRDs cascade. */
  delete(rt: ResourceType, ns: string, name: string, opts: { version: string; dryRun?: boolean; uid?: string; resourceVersion?: string }): { object: KubeObject; gone: boolean } {
    const prev = this.require(rt, ns, name);
    if (rt.group === '' && rt.plural === 'namespaces' && ['default', 'kube-system', 'kube-public'].includes(name)) {
      throw errors.forbidden(rt, name, `namespaces "${name}" is forbidden: this namespace may not be deleted`);
    }
    const pre = (what: string, want: string | undefined, have: string | undefined) => {
      if (want !== undefined && want !== have) {
        throw errors.conflict(rt, name, `Precondition failed: ${what} in precondition: ${want}, ${what} in object meta: ${have ?? ''}`);
      }
    };
    pre('UID', opts.uid, prev.metadata.uid);
    pre('ResourceVersion', opts.resourceVersion, prev.metadata.resourceVersion);
    const final = clone(prev);
    final.metadata.deletionTimestamp ??= nowTimestamp();
    final.metadata.deletionGracePeriodSeconds ??= 0;
    if (prev.metadata.finalizers?.length) {
      if (prev.metadata.deletionTimestamp || opts.dryRun) return { object: this.present(rt, prev, opts.version), gone: false };
      return { object: this.present(rt, this.commit(rt, 'MODIFIED', final, prev), opts.version), gone: false };
    }
    const isNamespace = rt.group === '' && rt.plural === 'namespaces';
    if (isNamespace) final.status = { ...(isObject(final.status) ? final.status : {}), phase: 'Terminating' };
    if (opts.dryRun) return { object: this.present(rt, final, opts.version), gone: true };
    let last = prev;
    if (isNamespace) {
      // Like the namespace controller, only synchronous: Terminating first, then the contents, then the namespace.
      last = this.commit(rt, 'MODIFIED', final, prev);
      for (const t of this.registry.all()) if (t.namespaced) this.list(t, name).forEach((o) => this.commit(t, 'DELETED', o, o));
    }
    const crd = isCrdType(rt) ? this.registry.all().find((t) => t.crdName === name) : undefined;
    if (crd) this.list(crd, undefined).forEach((o) => this.commit(crd, 'DELETED', o, o));
    const deleted = this.commit(rt, 'DELETED', isNamespace ? last : final, last);
    if (crd) {
      this.registry.unregisterCrd(name);
      this.removedListeners.forEach((fn) => fn(crd));
    }
    return { object: this.present(rt, deleted, opts.version), gone: true };
  }

  /** Stores the change under the next resourceVersion and records/broadcasts the event. */
  private commit(rt: ResourceType, type: EventType, next: KubeObject, prev: KubeObject | undefined): KubeObject {
    const stored = clone(next);
    stored.metadata.resourceVersion = String(++this.rv);
    const key = this.key(rt, stored.metadata.namespace ?? '', stored.metadata.name ?? '');
    if (type === 'DELETED') this.objects.delete(key);
    else this.objects.set(key, stored);
    const event: StoreEvent = { type, rv: this.rv, group: rt.group, plural: rt.plural, namespace: stored.metadata.namespace ?? '', object: stored, prev };
    this.history.push(event);
    while (this.history.length > this.historyLimit) this.compactedRv = this.history.shift()?.rv ?? this.compactedRv;
    for (const fn of [...this.listeners]) fn(event);
    return stored;
  }
}

function isCrdType(rt: ResourceType): boolean {
  return rt.group === 'apiextensions.k8s.io' && rt.plural === 'customresourcedefinitions';
}

/** What makes a write a no-op when unchanged: everything but resourceVersion and managedFields timestamps. */
function stripVolatile(o: KubeObject): JsonObject {
  const { resourceVersion: _rv, managedFields, ...meta } = o.metadata;
  const fields = (managedFields ?? []).map(({ time: _t, ...entry }) => entry);
  return { ...o, metadata: { ...meta, managedFields: fields } };
}

/** The apiextensions controller's status, set synchronously: names accepted and the CRD established. */
function crdStatus(crd: KubeObject, prev: KubeObject | undefined): void {
  const spec = isObject(crd.spec) ? crd.spec : {};
  const names = isObject(spec.names) ? spec.names : {};
  const kind = String(names.kind ?? '');
  names.singular ??= kind.toLowerCase();
  names.listKind ??= `${kind}List`;
  const storage = Array.isArray(spec.versions) ? spec.versions.filter(isObject).find((v) => v.storage === true) : undefined;
  // Keep transition times so a no-op update stays a no-op.
  const prevStatus = prev && isObject(prev.status) ? prev.status : {};
  const prevConditions = Array.isArray(prevStatus.conditions) ? prevStatus.conditions.filter(isObject) : [];
  const now = String(prevConditions[0]?.lastTransitionTime ?? nowTimestamp());
  crd.status = {
    conditions: [
      { type: 'NamesAccepted', status: 'True', lastTransitionTime: now, reason: 'NoConflicts', message: 'no conflicts found' },
      { type: 'Established', status: 'True', lastTransitionTime: now, reason: 'InitialNamesAccepted', message: 'the initial names have been accepted' },
    ],
    acceptedNames: clone(names),
    storedVersions: storage ? [String(storage.name)] : [],
  };
}
