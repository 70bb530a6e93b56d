// Structural-schema pruning and validation of custom resources against their CRD's openAPIV3Schema, the common subset:
// types, properties, additionalProperties, items, required, enum, nullable, min/max, minLength/maxLength,
// min/maxItems, pattern, x-kubernetes-preserve-unknown-fields, x-kubernetes-int-or-string. Formats and CEL rules are ignored.
import { isObject, type Json, type JsonObject, type StatusCause } from './types.js';

function typeName(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function quote(v: Json): string {
  return typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? 'null';
}

function typeMatches(v: Json, schema: JsonObject): boolean {
  if (schema['x-kubernetes-int-or-string'] === true) return typeof v === 'number' || typeof v === 'string';
  const t = schema.type;
  if (typeof t !== 'string') return true;
  const actual = typeName(v);
  return actual === t || (t === 'number' && actual === 'integer');
}

/** Prunes unknown fields in place (returning the value to keep) and collects validation errors. */
function visit(v: Json, schema: JsonObject, path: string, causes: StatusCause[]): Json {
  const invalid = (message: string) => causes.push({ reason: 'FieldValueInvalid', field: path, message: `Invalid value: ${quote(v)}: ${message}` });
  if (!typeMatches(v, schema)) {
    const t = String(schema.type);
    causes.push({ reason: 'FieldValueTypeInvalid', field: path, message: `Invalid value: "${typeName(v)}": ${path} in body must be of type ${t}: ${quote(typeName(v))}` });
    return v;
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) {
    causes.push({ reason: 'FieldValueNotSupported', field: path, message: `Unsupported value: ${quote(v)}: supported values: ${schema.enum.map(quote).join(', ')}` });
  }
  if (typeof v === 'number') {
    if (typeof schema.minimum === 'number' && v < schema.minimum) invalid(`${path} in body should be greater than or equal to ${schema.minimum}`);
    if (typeof schema.maximum === 'number' && v > schema.maximum) invalid(`${path} in body should be less than or equal to ${schema.maximum}`);
  }
  if (typeof v === 'string') {
    if (typeof schema.minLength === 'number' && v.length < schema.minLength) invalid(`${path} in body should be at least ${schema.minLength} chars long`);
    if (typeof schema.maxLength === 'number' && v.length > schema.maxLength) invalid(`${path} in body may not be longer than ${schema.maxLength}`);
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern).test(v)) invalid(`${path} in body should match '${schema.pattern}'`);
  }
  if (Array.isArray(v)) {
    if (typeof schema.minItems === 'number' && v.length < schema.minItems) invalid(`${path} in body should have at least ${schema.minItems} items`);
    if (typeof schema.maxItems === 'number' && v.length > schema.maxItems) invalid(`${path} in body should have at most ${schema.maxItems} items`);
    const items = isObject(schema.items) ? schema.items : undefined;
    return items ? v.map((x, i) => visit(x, items, `${path}[${i}]`, causes)) : v;
  }
  if (isObject(v)) return visitObject(v, schema, path, causes);
  return v;
}

function visitObject(v: JsonObject, schema: JsonObject, path: string, causes: StatusCause[]): JsonObject {
  const props = isObject(schema.properties) ? schema.properties : undefined;
  const additional = isObject(schema.additionalProperties) ? schema.additionalProperties : undefined;
  const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true || schema.additionalProperties === true;
  const out: JsonObject = {};
  const child = (k: string) => (path ? `${path}.${k}` : k);
  for (const [k, x] of Object.entries(v)) {
    const sub = props && isObject(props[k]) ? props[k] : additional;
    if (x === undefined) continue;
    if (x === null && !(sub && sub.nullable === true)) continue; // null in a non-nullable field is dropped
    if (sub) out[k] = visit(x, sub, child(k), causes);
    else if (preserve || (!props && !additional && schema.type !== 'object')) out[k] = x;
  }
  for (const r of Array.isArray(schema.required) ? schema.required : []) {
    if (typeof r === 'string' && out[r] === undefined) causes.push({ reason: 'FieldValueRequired', field: child(r), message: 'Required value' });
  }
  return out;
}

/** Prunes and validates a custom resource body; apiVersion, kind and metadata are handled by the caller. */
export function pruneAndValidate(obj: JsonObject, schema: JsonObject): { value: JsonObject; causes: StatusCause[] } {
  const causes: StatusCause[] = [];
  const { apiVersion, kind, metadata, ...rest } = obj;
  const rootSchema: JsonObject = { ...schema, type: 'object' };
  const pruned = visitObject(rest, rootSchema, '', causes);
  // Root properties apiVersion/kind/metadata are implicit; drop them from required checks the schema may declare.
  const kept = causes.filter((c) => !['apiVersion', 'kind', 'metadata'].includes(c.field ?? ''));
  return { value: { apiVersion, kind, metadata, ...pruned }, causes: kept };
}
