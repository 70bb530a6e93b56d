// Server-side apply field ownership (metadata.managedFields, FieldsV1), simplified but with real conflict semantics:
// - every write records the fields its manager set; Update operations take over changed fields silently;
// - apply conflicts (409) when it sets a field another manager owns to a different value, unless force=true;
// - apply removes fields its manager applied before but no longer applies, when nobody else owns them.
// Simplifications: known associative lists are keyed by field name (see patch.ts), every other list is atomic,
// and a manager's ownership is not split per API version.
import { mergeKeyFor, MERGED_PRIMITIVE_LISTS } from './patch.js';
import { clone, deepEqual, isObject, nowTimestamp, StatusError, type Json, type JsonObject, type KubeObject } from './types.js';

type Path = string[];

export interface ManagedEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  subresource?: string;
  fields: Set<string>;
}

// Server-owned metadata that is never tracked.
const UNTRACKED_META = new Set(['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
  'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields', 'selfLink']);

const enc = (p: Path) => JSON.stringify(p);
const dec = (s: string) => JSON.parse(s) as Path;

function isAssociative(field: string, items: Json[]): string | undefined {
  const key = mergeKeyFor(field, items);
  return key && items.every((i) => isObject(i) && i[key] !== undefined) ? key : undefined;
}

function walk(v: Json | undefined, prefix: Path, field: string, out: Set<string>): void {
  if (v === null || v === undefined) return;
  if (isObject(v)) {
    const keys = Object.keys(v);
    if (!keys.length) out.add(enc(prefix));
    for (const k of keys) walk(v[k], [...prefix, `f:${k}`], k, out);
  } else if (Array.isArray(v) && isAssociative(field, v)) {
    const key = isAssociative(field, v) ?? '';
    for (const item of v.filter(isObject)) {
      const seg = `k:${JSON.stringify({ [key]: item[key] })}`;
      out.add(enc([...prefix, seg, '.']));
      for (const k of Object.keys(item)) walk(item[k], [...prefix, seg, `f:${k}`], k, out);
    }
  } else if (Array.isArray(v) && MERGED_PRIMITIVE_LISTS.has(field)) {
    for (const item of v) out.add(enc([...prefix, `v:${JSON.stringify(item)}`]));
  } else out.add(enc(prefix));
}

/** The set of leaf field paths an object sets, excluding identity and server-owned fields. */
export function fieldSet(obj: JsonObject): Set<string> {
  const out = new Set<string>();
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'apiVersion' || k === 'kind') continue;
    if (k === 'metadata' && isObject(v)) {
      for (const [mk, mv] of Object.entries(v)) if (!UNTRACKED_META.has(mk)) walk(mv, ['f:metadata', `f:${mk}`], mk, out);
    } else walk(v, [`f:${k}`], k, out);
  }
  return out;
}

function findItem(list: Json | undefined, seg: string): number {
  if (!Array.isArray(list)) return -1;
  if (seg.startsWith('k:')) {
    const want = JSON.parse(seg.slice(2)) as JsonObject;
    return list.findIndex((i) => isObject(i) && Object.entries(want).every(([k, v]) => deepEqual(i[k], v)));
  }
  const want = JSON.parse(seg.slice(2)) as Json;
  return list.findIndex((i) => deepEqual(i, want));
}

function valueAt(obj: Json | undefined, path: Path): Json | undefined {
  let cur = obj;
  for (const seg of path) {
    if (seg === '.') return cur;
    if (seg.startsWith('f:')) cur = isObject(cur) ? cur[seg.slice(2)] : undefined;
    else cur = Array.isArray(cur) ? cur[findItem(cur, seg)] : undefined;
  }
  return cur;
}

function removePath(obj: JsonObject, path: Path): void {
  const last = path[path.length - 1];
  const parentPath = last === '.' ? path.slice(0, -2) : path.slice(0, -1);
  const parent = valueAt(obj, parentPath);
  const seg = last === '.' ? path[path.length - 2] : last;
  if (seg.startsWith('f:') && isObject(parent)) delete parent[seg.slice(2)];
  else if (Array.isArray(parent)) {
    const i = findItem(parent, seg);
    if (i >= 0) parent.splice(i, 1);
  }
}

/** Renders a path the way apply conflicts report it, e.g. .spec.template.spec.containers[name="app"].image */
export function formatPath(path: Path): string {
  return path.map((seg) => {
    if (seg === '.') return '';
    if (seg.startsWith('f:')) return `.${seg.slice(2)}`;
    if (seg.startsWith('v:')) return `[${seg.slice(2)}]`;
    const kv = JSON.parse(seg.slice(2)) as JsonObject;
    return `[${Object.entries(kv).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}]`;
  }).join('');
}

function toFieldsV1(fields: Set<string>): JsonObject {
  const root: JsonObject = {};
  for (const p of [...fields].sort()) {
    let cur = root;
    for (const seg of dec(p)) {
      const next = isObject(cur[seg]) ? cur[seg] : (cur[seg] = {});
      cur = next as JsonObject;
    }
  }
  return root;
}

function fromFieldsV1(node: JsonObject, prefix: Path, out: Set<string>): Set<string> {
  for (const [k, v] of Object.entries(node)) {
    if (isObject(v) && Object.keys(v).length) fromFieldsV1(v, [...prefix, k], out);
    else out.add(enc([...prefix, k]));
  }
  return out;
}

export function readManaged(obj: KubeObject | undefined): ManagedEntry[] {
  const list = obj?.metadata.managedFields ?? [];
  return list.filter(isObject).map((e) => ({
    manager: String(e.manager ?? ''),
    operation: e.operation === 'Apply' ? 'Apply' : 'Update',
    apiVersion: String(e.apiVersion ?? ''),
    time: String(e.time ?? ''),
    subresource: typeof e.subresource === 'string' ? e.subresource : undefined,
    fields: fromFieldsV1(isObject(e.fieldsV1) ? e.fieldsV1 : {}, [], new Set()),
  }));
}

export function writeManaged(obj: KubeObject, entries: ManagedEntry[]): void {
  const list = entries.filter((e) => e.fields.size > 0).map((e) => {
    const out: JsonObject = { manager: e.manager, operation: e.operation, apiVersion: e.apiVersion, time: e.time, fieldsType: 'FieldsV1', fieldsV1: toFieldsV1(e.fields) };
    if (e.subresource) out.subresource = e.subresource;
    return out;
  });
  if (list.length) obj.metadata.managedFields = list;
  else delete obj.metadata.managedFields;
}

function ownEntry(entries: ManagedEntry[], manager: string, operation: 'Apply' | 'Update', apiVersion: string, subresource?: string): ManagedEntry {
  let e = entries.find((x) => x.manager === manager && x.operation === operation && x.subresource === subresource);
  if (!e) entries.push((e = { manager, operation, apiVersion, time: '', subresource, fields: new Set() }));
  e.apiVersion = apiVersion;
  e.time = nowTimestamp();
  return e;
}

/** Records a non-apply write (create/update/patch) in next's managedFields, based on what changed from old. */
export function trackUpdate(old: KubeObject | undefined, next: KubeObject, manager: string, apiVersion: string, subresource?: string): void {
  const entries = readManaged(old);
  const before = old ? fieldSet(old) : new Set<string>();
  const after = fieldSet(next);
  const changed = [...after].filter((p) => !before.has(p) || !deepEqual(valueAt(old, dec(p)), valueAt(next, dec(p))));
  const removed = [...before].filter((p) => !after.has(p));
  if (!changed.length && !removed.length && old) return writeManaged(next, entries);
  for (const e of entries) for (const p of [...changed, ...removed]) e.fields.delete(p);
  const own = ownEntry(entries, manager, 'Update', apiVersion, subresource);
  changed.forEach((p) => own.fields.add(p));
  writeManaged(next, entries);
}

function conflictError(conflicts: { manager: string; path: string }[], apiVersion: string, name: string): StatusError {
  const n = conflicts.length;
  const causes = conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with "${c.manager}" using ${apiVersion}`, field: c.path }));
  const message = n === 1
    ? `Apply failed with 1 conflict: ${causes[0].message}: ${causes[0].field}`
    : `Apply failed with ${n} conflicts: ${causes.map((c) => `${c.message}: ${c.field}`).join('\n')}`;
  return new StatusError(409, 'Conflict', message, { name, causes });
}

/** Server-side apply of config over live (undefined when creating); returns the merged object with managedFields. */
export function applyConfig(live: KubeObject | undefined, config: KubeObject, manager: string, force: boolean, apiVersion: string): KubeObject {
  const entries = readManaged(live);
  const applied = fieldSet(config);
  const conflicts: { manager: string; path: string; entry: ManagedEntry; key: string }[] = [];
  for (const e of entries) {
    if (e.manager === manager) continue;
    for (const key of e.fields) {
      if (applied.has(key) && !deepEqual(valueAt(live, dec(key)), valueAt(config, dec(key)))) {
        conflicts.push({ manager: e.manager, path: formatPath(dec(key)), entry: e, key });
      }
    }
  }
  if (conflicts.length && !force) throw conflictError(conflicts, apiVersion, config.metadata.name ?? '');
  for (const c of conflicts) c.entry.fields.delete(c.key);

  const own = ownEntry(entries, manager, 'Apply', apiVersion);
  const ownedElsewhere = new Set(entries.filter((e) => e !== own).flatMap((e) => [...e.fields]));
  const result = (live ? clone(live) : { apiVersion: config.apiVersion, kind: config.kind, metadata: {} }) as KubeObject;
  // Deepest paths first so list items go after their fields.
  const stale = [...own.fields].filter((k) => !applied.has(k) && !ownedElsewhere.has(k)).map(dec).sort((a, b) => b.length - a.length);
  for (const p of stale) removePath(result, p);
  const merged = mergeApplied(result, config, '') as KubeObject;
  own.fields = applied;
  writeManaged(merged, entries);
  return merged;
}

/** Merges an applied configuration: maps recursively, associative lists by key, other lists and scalars replace. */
function mergeApplied(live: Json | undefined, config: Json, field: string): Json {
  if (isObject(config)) {
    const out: JsonObject = isObject(live) ? { ...live } : {};
    for (const [k, v] of Object.entries(config)) {
      if (v === undefined) continue;
      if (v === null) delete out[k];
      else out[k] = mergeApplied(out[k], v, k);
    }
    return out;
  }
  if (Array.isArray(config) && Array.isArray(live)) {
    const key = isAssociative(field, [...live, ...config]);
    if (key) {
      const out = [...live];
      for (const item of config.filter(isObject)) {
        const i = out.findIndex((o) => isObject(o) && deepEqual(o[key], item[key]));
        if (i >= 0) out[i] = mergeApplied(out[i], item, field);
        else out.push(clone(item));
      }
      return out;
    }
    if (MERGED_PRIMITIVE_LISTS.has(field)) return [...live, ...config.filter((x) => !live.some((l) => deepEqual(l, x)))];
  }
  return clone(config);
}
