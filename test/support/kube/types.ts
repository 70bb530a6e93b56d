// Shared JSON/object types and the Status error model of the fake Kubernetes API server.

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json | undefined;
}

export interface ObjectMeta extends JsonObject {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  managedFields?: JsonObject[];
}

/** Any Kubernetes object as stored and served (plain JSON, never class instances). */
export interface KubeObject extends JsonObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
}

export type StatusReason =
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Invalid'
  | 'Gone'
  | 'Expired'
  | 'Unauthorized'
  | 'Forbidden'
  | 'MethodNotAllowed'
  | 'BadRequest'
  | 'UnsupportedMediaType'
  | 'ServiceUnavailable'
  | 'InternalError'
  /** metav1.StatusReasonUnknown: plain Go errors surface as a 500 without a reason. */
  | '';

export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
}

/** Thrown anywhere in the fake; the HTTP layer turns it into a metav1.Status body. */
export class StatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: StatusReason,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
  }

  toStatus(): JsonObject {
    const status: JsonObject = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      code: this.code,
    };
    if (this.reason) status.reason = this.reason;
    if (this.details) status.details = stripUndefined(this.details);
    return status;
  }
}

/** Identifies the group and plural of a resource for error details (kind is the plural, like the real API). */
export interface GroupResource {
  group: string;
  plural: string;
}

function qualified(gr: GroupResource): string {
  return gr.group ? `${gr.plural}.${gr.group}` : gr.plural;
}

export const errors = {
  notFound: (gr: GroupResource, name: string) =>
    new StatusError(404, 'NotFound', `${qualified(gr)} "${name}" not found`, { name, group: gr.group || undefined, kind: gr.plural }),
  alreadyExists: (gr: GroupResource, name: string) =>
    new StatusError(409, 'AlreadyExists', `${qualified(gr)} "${name}" already exists`, { name, group: gr.group || undefined, kind: gr.plural }),
  conflict: (gr: GroupResource, name: string, why: string, causes?: StatusCause[]) =>
    new StatusError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(gr)} "${name}": ${why}`, {
      name, group: gr.group || undefined, kind: gr.plural, causes,
    }),
  staleUpdate: (gr: GroupResource, name: string) =>
    errors.conflict(gr, name, 'the object has been modified; please apply your changes to the latest version and try again'),
  invalid: (kind: string, group: string, name: string, causes: StatusCause[]) =>
    new StatusError(422, 'Invalid', `${kind}${group ? '.' + group : ''} "${name}" is invalid: ${joinCauses(causes)}`, {
      name, group: group || undefined, kind, causes,
    }),
  badRequest: (message: string) => new StatusError(400, 'BadRequest', message),
  methodNotAllowed: () => new StatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'),
  unauthorized: () => new StatusError(401, 'Unauthorized', 'Unauthorized'),
  forbidden: (gr: GroupResource, name: string, message: string) =>
    new StatusError(403, 'Forbidden', message, { name: name || undefined, group: gr.group || undefined, kind: gr.plural }),
  expired: (message: string) => new StatusError(410, 'Expired', message),
  unsupportedMediaType: (contentType: string, accepted: string[]) =>
    new StatusError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`, {
      causes: [{ reason: 'UnsupportedMediaType', message: contentType }],
    }),
  pathNotFound: () => new StatusError(404, 'NotFound', 'the server could not find the requested resource'),
};

// One cause reads "field: message"; several are bracketed like Go's aggregated field errors.
function joinCauses(causes: StatusCause[]): string {
  const parts = causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message));
  return parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`;
}

function stripUndefined(details: StatusDetails): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(details)) if (v !== undefined) out[k] = v as Json;
  return out;
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function clone<T extends Json>(v: T): T {
  return structuredClone(v);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && deepEqual(a[k], b[k]));
  }
  return false;
}

/** The real API formats timestamps as RFC 3339 with second precision. */
export function nowTimestamp(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}
