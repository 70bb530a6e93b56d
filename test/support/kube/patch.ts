// Patch formats the API server accepts: JSON merge patch, strategic merge patch (simplified) and JSON patch.
import { clone, deepEqual, isObject, StatusError, type Json, type JsonObject } from './types.js';

/** RFC 7386: objects merge recursively, null deletes, everything else (arrays too) replaces. */
export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const result: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    if (v === null) delete result[k];
    else result[k] = mergePatch(result[k], v);
  }
  return result;
}

// patchMergeKey of the list fields the mesh touches, by field name (the real server looks them up per Go type).
const MERGE_KEYS: Record<string, string | ((items: Json[]) => string)> = {
  containers: 'name', initContainers: 'name', ephemeralContainers: 'name', volumes: 'name', env: 'name',
  imagePullSecrets: 'name', webhooks: 'name', secrets: 'name', resourceClaims: 'name',
  volumeMounts: 'mountPath', volumeDevices: 'devicePath', hostAliases: 'ip', conditions: 'type',
  ownerReferences: 'uid', topologySpreadConstraints: 'topologyKey',
  // Container ports merge on containerPort, Service ports on port.
  ports: (items) => (items.some((i) => isObject(i) && 'containerPort' in i) ? 'containerPort' : 'port'),
};
// Primitive lists with patchStrategy "merge" (set union).
export const MERGED_PRIMITIVE_LISTS = new Set(['finalizers']);

/** The merge key of a list field, if it is one of the known associative lists. */
export function mergeKeyFor(field: string, items: Json[]): string | undefined {
  const rule = MERGE_KEYS[field];
  return typeof rule === 'function' ? rule(items) : rule;
}

function stripDirectives(v: Json): Json {
  if (Array.isArray(v)) return v.filter((x) => !(isObject(x) && x.$patch !== undefined && Object.keys(x).length === 1)).map(stripDirectives);
  if (!isObject(v)) return v;
  const out: JsonObject = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('$') && x !== undefined) out[k] = stripDirectives(x);
  return out;
}

function mergeKeyedList(orig: Json[], patch: Json[], key: string): Json[] {
  if (patch.some((p) => isObject(p) && p.$patch === 'replace')) return stripDirectives(patch) as Json[];
  const out = orig.map((o) => clone(o));
  for (const item of patch) {
    if (!isObject(item) || item[key] === undefined) {
      out.push(stripDirectives(item));
      continue;
    }
    const idx = out.findIndex((o) => isObject(o) && deepEqual(o[key], item[key]));
    if (item.$patch === 'delete') {
      if (idx >= 0) out.splice(idx, 1);
    } else if (idx >= 0) out[idx] = strategicMergePatch(out[idx], item);
    else out.push(stripDirectives(item));
  }
  return out;
}

/**
 * Strategic merge patch, simplified: a merge patch whose well-known lists (containers, env, ports, volumes, ...)
 * merge by their merge key, honouring $patch: replace/delete and $deleteFromPrimitiveList; $setElementOrder and
 * $retainKeys are accepted and ignored.
 */
export function strategicMergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  if (patch.$patch === 'replace') return stripDirectives(patch);
  const result: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const cur = result[field];
      if (Array.isArray(cur) && Array.isArray(v)) result[field] = cur.filter((x) => !v.some((d) => deepEqual(d, x)));
      continue;
    }
    if (k.startsWith('$') || v === undefined) continue;
    const cur = result[k];
    if (v === null || (isObject(v) && v.$patch === 'delete')) delete result[k];
    else if (Array.isArray(v)) {
      const key = Array.isArray(cur) ? mergeKeyFor(k, [...cur, ...v]) : undefined;
      if (key && Array.isArray(cur)) result[k] = mergeKeyedList(cur, v, key);
      else if (MERGED_PRIMITIVE_LISTS.has(k) && Array.isArray(cur)) result[k] = [...cur, ...v.filter((x) => !cur.some((c) => deepEqual(c, x)))];
      else result[k] = stripDirectives(v);
    } else result[k] = strategicMergePatch(cur, v);
  }
  return result;
}

export interface JsonPatchOp {
  op: string;
  path: string;
  from?: string;
  value?: Json;
}

// The server answers a patch that cannot be applied with 422 and the underlying error message.
function patchError(message: string): StatusError {
  return new StatusError(422, 'Invalid', message);
}

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw patchError(`JSON pointer "${pointer}" must start with "/"`);
  return pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function arrayIndex(arr: Json[], seg: string, forInsert: boolean): number {
  if (forInsert && seg === '-') return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(seg)) throw patchError(`invalid array index "${seg}"`);
  const i = Number(seg);
  if (i > arr.length || (!forInsert && i === arr.length)) throw patchError(`array index ${i} out of bounds`);
  return i;
}

function getAt(doc: Json, segs: string[], pointer: string): Json {
  let cur: Json = doc;
  for (const seg of segs) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, seg, false)];
    else if (isObject(cur) && cur[seg] !== undefined) cur = cur[seg] as Json;
    else throw patchError(`doc is missing path: "${pointer}": missing value`);
  }
  return cur;
}

/** Adds (or, with replace, overwrites) the value at the pointer and returns the possibly new root. */
function setAt(doc: Json, segs: string[], value: Json, mode: 'add' | 'replace', pointer: string): Json {
  if (!segs.length) return value;
  const parent = getAt(doc, segs.slice(0, -1), pointer);
  const last = segs[segs.length - 1];
  if (Array.isArray(parent)) {
    const i = arrayIndex(parent, last, mode === 'add');
    if (mode === 'add') parent.splice(i, 0, value);
    else parent[i] = value;
  } else if (isObject(parent)) {
    if (mode === 'replace' && !(last in parent)) throw patchError(`replace operation does not apply: doc is missing key: ${pointer}: missing value`);
    parent[last] = value;
  } else throw patchError(`doc is missing path: "${pointer}": missing value`);
  return doc;
}

function removeAt(doc: Json, segs: string[], pointer: string): Json {
  if (!segs.length) return null;
  const parent = getAt(doc, segs.slice(0, -1), pointer);
  const last = segs[segs.length - 1];
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, false), 1);
  else if (isObject(parent) && last in parent) delete parent[last];
  else throw patchError(`remove operation does not apply: doc is missing path: "${pointer}": missing value`);
  return doc;
}

/** RFC 6902 JSON patch over a copy of doc; any failing operation fails the whole patch. */
export function jsonPatch(doc: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw new StatusError(400, 'BadRequest', 'json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  let root = clone(doc);
  for (const raw of ops) {
    if (!isObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') throw patchError('invalid JSON patch operation');
    const op: JsonPatchOp = { op: raw.op, path: raw.path, from: typeof raw.from === 'string' ? raw.from : undefined, value: raw.value };
    const segs = parsePointer(op.path);
    const from = () => {
      if (op.from === undefined) throw patchError(`${op.op} operation requires "from"`);
      return parsePointer(op.from);
    };
    switch (op.op) {
      case 'add': root = setAt(root, segs, clone(op.value ?? null), 'add', op.path); break;
      case 'replace': root = setAt(root, segs, clone(op.value ?? null), 'replace', op.path); break;
      case 'remove': root = removeAt(root, segs, op.path); break;
      case 'move': {
        const value = getAt(root, from(), op.from ?? '');
        root = setAt(removeAt(root, from(), op.from ?? ''), segs, value, 'add', op.path);
        break;
      }
      case 'copy': root = setAt(root, segs, clone(getAt(root, from(), op.from ?? '')), 'add', op.path); break;
      case 'test':
        if (!deepEqual(getAt(root, segs, op.path), op.value ?? null)) throw patchError(`testing value ${op.path} failed: test failed`);
        break;
      default: throw patchError(`Unexpected kind: ${op.op}`);
    }
  }
  return root;
}
