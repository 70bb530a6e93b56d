// The write verbs on top of the store: create, update, patch (four content types), server-side apply, scale, deletecollection.
import { applyConfig } from './managed-fields.js';
import { jsonPatch, mergePatch, strategicMergePatch } from './patch.js';
import { apiVersionOf, type ResourceType } from './resources.js';
import { labelSelectorToString, type Matcher } from './selectors.js';
import type { ObjectStore } from './store.js';
import { clone, errors, isObject, StatusError, type Json, type JsonObject, type KubeObject } from './types.js';

export interface VerbContext {
  store: ObjectStore;
  rt: ResourceType;
  version: string;
  ns: string;
  manager: string;
  dryRun: boolean;
}

export interface Written {
  object: KubeObject;
  created: boolean;
}

export const PATCH_TYPES = ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/apply-patch+yaml'];

function bodyObject(body: Json): KubeObject {
  if (!isObject(body)) throw errors.badRequest('the object provided is unrecognized: expected a JSON object');
  const metadata = isObject(body.metadata) ? body.metadata : {};
  return { ...body, apiVersion: String(body.apiVersion ?? ''), kind: String(body.kind ?? ''), metadata };
}

/** The checks the decoder and REST handler make before the strategy ever sees the object (all 400 BadRequest). */
function checkIdentity(ctx: VerbContext, obj: KubeObject, urlName: string | undefined): void {
  const expected = apiVersionOf(ctx.rt, ctx.version);
  if (obj.apiVersion && obj.apiVersion !== expected && !ctx.rt.versions.some((v) => apiVersionOf(ctx.rt, v) === obj.apiVersion)) {
    throw errors.badRequest(`the API version in the data (${obj.apiVersion}) does not match the expected API version (${expected})`);
  }
  if (obj.kind && obj.kind !== ctx.rt.kind) {
    throw errors.badRequest(`${obj.kind} in version "${ctx.version}" cannot be handled as a ${ctx.rt.kind}: no kind "${obj.kind}" is registered for version "${expected}"`);
  }
  if (ctx.rt.namespaced && obj.metadata.namespace && obj.metadata.namespace !== ctx.ns) {
    throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
  }
  if (urlName !== undefined && obj.metadata.name && obj.metadata.name !== urlName) {
    throw errors.badRequest(`the name of the object (${obj.metadata.name}) does not match the name on the URL (${urlName})`);
  }
}

// The storage layer's plain error, which the real server answers with a reason-less 500.
const rvOnCreate = () => new StatusError(500, '', 'resourceVersion should not be set on objects to be created');

function checkFresh(ctx: VerbContext, prev: KubeObject, rv: string | undefined): void {
  if (rv && rv !== prev.metadata.resourceVersion) throw errors.staleUpdate(ctx.rt, prev.metadata.name ?? '');
}

const opts = (ctx: VerbContext, extra: { subresource?: 'status'; applied?: boolean } = {}) => ({
  version: ctx.version, manager: ctx.manager, dryRun: ctx.dryRun, ...extra,
});

export function createObject(ctx: VerbContext, body: Json): Written {
  const obj = bodyObject(body);
  checkIdentity(ctx, obj, undefined);
  if (obj.metadata.resourceVersion) throw rvOnCreate();
  let name = obj.metadata.name ?? '';
  if (!name && obj.metadata.generateName) {
    do name = obj.metadata.generateName + randomSuffix();
    while (ctx.store.peek(ctx.rt, ctx.ns, name));
  }
  if (!name) {
    throw errors.invalid(ctx.rt.kind, ctx.rt.group, '', [{ reason: 'FieldValueRequired', field: 'metadata.name', message: 'Required value: name or generateName is required' }]);
  }
  if (ctx.store.peek(ctx.rt, ctx.ns, name)) throw errors.alreadyExists(ctx.rt, name);
  return { object: ctx.store.write(ctx.rt, ctx.ns, name, undefined, obj, opts(ctx)), created: true };
}

// Same alphabet as the API server's name generator (no vowels, no confusable characters).
function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  return Array.from({ length: 5 }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join('');
}

export function updateObject(ctx: VerbContext, name: string, body: Json, subresource?: 'status'): Written {
  const obj = bodyObject(body);
  checkIdentity(ctx, obj, name);
  const prev = ctx.store.require(ctx.rt, ctx.ns, name);
  checkFresh(ctx, prev, obj.metadata.resourceVersion);
  return { object: ctx.store.write(ctx.rt, ctx.ns, name, prev, obj, opts(ctx, { subresource })), created: false };
}

function parseJson(raw: string): Json {
  try {
    return JSON.parse(raw) as Json;
  } catch (e) {
    throw errors.badRequest(`error decoding patch: ${(e as Error).message}`);
  }
}

/** Applies a non-apply patch document to the current object (as served in ctx.version). */
function patched(current: KubeObject, contentType: string, raw: string): Json {
  const doc = parseJson(raw);
  if (contentType === 'application/json-patch+json') return jsonPatch(current, doc);
  if (!isObject(doc)) throw errors.badRequest('error decoding patch: expected a JSON object');
  if (contentType === 'application/merge-patch+json') return mergePatch(current, doc);
  return strategicMergePatch(current, doc);
}

function checkPatchType(ctx: VerbContext, contentType: string): void {
  // Custom resources have no Go struct tags to drive a strategic merge, so the real server refuses it.
  const accepted = ctx.rt.crdName ? PATCH_TYPES.filter((t) => !t.includes('strategic')) : PATCH_TYPES;
  if (!accepted.includes(contentType)) throw errors.unsupportedMediaType(contentType, accepted);
}

export async function patchObject(ctx: VerbContext, name: string, contentType: string, raw: string, force: boolean, subresource?: 'status'): Promise<Written> {
  checkPatchType(ctx, contentType);
  if (contentType === 'application/apply-patch+yaml') return applyObject(ctx, name, await parseApplyBody(raw), force, subresource);
  const prev = ctx.store.require(ctx.rt, ctx.ns, name);
  const result = bodyObject(patched(ctx.store.present(ctx.rt, prev, ctx.version), contentType, raw));
  checkIdentity(ctx, result, name);
  checkFresh(ctx, prev, result.metadata.resourceVersion);
  return { object: ctx.store.write(ctx.rt, ctx.ns, name, prev, result, opts(ctx, { subresource })), created: false };
}

// Apply bodies are YAML (JSON is YAML too, and what client-node sends).
async function parseApplyBody(raw: string): Promise<Json> {
  try {
    return JSON.parse(raw) as Json;
  } catch {
    try {
      const yaml = await import('js-yaml');
      return yaml.load(raw) as Json;
    } catch (e) {
      throw errors.badRequest(`error decoding YAML: ${(e as Error).message}`);
    }
  }
}

export function applyObject(ctx: VerbContext, name: string, body: Json, force: boolean, subresource?: 'status'): Written {
  if (!ctx.manager) {
    throw errors.invalid('PatchOptions', 'meta.k8s.io', '', [{ reason: 'FieldValueRequired', field: 'fieldManager', message: 'Required value: is required for apply patch' }]);
  }
  const config = bodyObject(body);
  if (!config.apiVersion || !config.kind) throw errors.badRequest(`invalid object type: ${config.apiVersion}, Kind=${config.kind}`);
  checkIdentity(ctx, config, name);
  delete config.metadata.managedFields;
  // Status belongs to the status subresource; applying it to the main resource is ignored.
  if (ctx.rt.status && subresource !== 'status') delete config.status;
  config.metadata = { ...config.metadata, name };
  if (ctx.rt.namespaced) config.metadata.namespace = ctx.ns;
  const prev = ctx.store.peek(ctx.rt, ctx.ns, name);
  if (prev) checkFresh(ctx, prev, config.metadata.resourceVersion);
  else if (config.metadata.resourceVersion) throw rvOnCreate();
  delete config.metadata.resourceVersion;
  const apiVersion = apiVersionOf(ctx.rt, ctx.version);
  const live = prev ? ctx.store.present(ctx.rt, prev, ctx.version) : undefined;
  const merged = applyConfig(live, config, ctx.manager, force, apiVersion);
  return { object: ctx.store.write(ctx.rt, ctx.ns, name, prev, merged, opts(ctx, { subresource, applied: true })), created: !prev };
}

function getPath(obj: JsonObject, path: string): Json | undefined {
  let cur: Json | undefined = obj;
  for (const seg of path.split('.').filter(Boolean)) cur = isObject(cur) ? cur[seg] : undefined;
  return cur;
}

function setPath(obj: JsonObject, path: string, value: Json): void {
  const segs = path.split('.').filter(Boolean);
  let cur = obj;
  for (const seg of segs.slice(0, -1)) cur = isObject(cur[seg]) ? cur[seg] : (cur[seg] = {});
  cur[segs[segs.length - 1]] = value;
}

/** autoscaling/v1 Scale view of a resource with a scale subresource. */
export function getScale(ctx: VerbContext, name: string): KubeObject {
  const scale = ctx.rt.scale;
  if (!scale) throw errors.pathNotFound();
  const obj = ctx.store.require(ctx.rt, ctx.ns, name);
  const { uid, resourceVersion, creationTimestamp, namespace } = obj.metadata;
  const selector = ctx.rt.crdName
    ? getPath(obj, scale.labelSelectorPath ?? '') ?? ''
    : labelSelectorToString(isObject(obj.spec) ? obj.spec.selector : undefined);
  const metadata: JsonObject = { name, uid: uid ?? '', resourceVersion: resourceVersion ?? '', creationTimestamp: creationTimestamp ?? '' };
  if (namespace) metadata.namespace = namespace;
  return {
    kind: 'Scale', apiVersion: 'autoscaling/v1', metadata,
    spec: { replicas: getPath(obj, scale.specReplicasPath) ?? 0 },
    status: { replicas: getPath(obj, scale.statusReplicasPath) ?? 0, selector },
  };
}

/** PUT /scale: only spec.replicas is taken from the Scale; everything else stays as stored. */
export function writeScale(ctx: VerbContext, name: string, desired: Json): KubeObject {
  const scale = ctx.rt.scale;
  if (!scale) throw errors.pathNotFound();
  const current = getScale(ctx, name);
  const d = bodyObject(desired);
  const replicas = isObject(d.spec) ? d.spec.replicas : undefined;
  if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
    throw errors.invalid('Scale', 'autoscaling', name, [{ reason: 'FieldValueInvalid', field: 'spec.replicas', message: `Invalid value: ${JSON.stringify(replicas ?? null)}: must be greater than or equal to 0` }]);
  }
  const prev = ctx.store.require(ctx.rt, ctx.ns, name);
  checkFresh(ctx, prev, d.metadata.resourceVersion);
  const next = clone(prev);
  setPath(next, scale.specReplicasPath, replicas);
  ctx.store.write(ctx.rt, ctx.ns, name, prev, next, opts(ctx));
  return ctx.dryRun ? { ...current, spec: { replicas } } : getScale(ctx, name);
}

/** PATCH /scale: the patch applies to the Scale object (Scale is a built-in type, so strategic merge is fine). */
export async function patchScale(ctx: VerbContext, name: string, contentType: string, raw: string): Promise<KubeObject> {
  if (!PATCH_TYPES.includes(contentType)) throw errors.unsupportedMediaType(contentType, PATCH_TYPES);
  const current = getScale(ctx, name);
  const desired = contentType === 'application/apply-patch+yaml'
    ? mergePatch(current, await parseApplyBody(raw))
    : patched(current, contentType, raw);
  return writeScale(ctx, name, desired);
}

export function deleteCollection(ctx: VerbContext, match: Matcher): KubeObject[] {
  const victims = ctx.store.list(ctx.rt, ctx.ns || undefined, match);
  return victims.map((o) => ctx.store.delete(ctx.rt, o.metadata.namespace ?? '', o.metadata.name ?? '', { version: ctx.version, dryRun: ctx.dryRun }).object);
}
