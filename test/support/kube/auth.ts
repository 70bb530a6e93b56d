// Authentication (bearer tokens), authorization (an allow-all policy minus a deny list) and the review APIs
// (SelfSubjectAccessReview, SubjectAccessReview, TokenReview, SelfSubjectReview) answered from the same data.
import type { TLSSocket } from 'node:tls';
import { errors, isObject, type Json, type JsonObject } from './types.js';

export interface UserInfo {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface TokenIdentity extends UserInfo {
  /** Audiences the token is valid for; a TokenReview naming others is not authenticated. */
  audiences?: string[];
}

/** A denied request pattern; omitted fields and '*' match anything. resource may name a subresource, e.g. "deployments/scale". */
export interface DenyRule {
  verb: string;
  group: string;
  resource: string;
  namespace?: string;
  name?: string;
  /** Only deny this user (username); default: every user. */
  user?: string;
}

export interface ResourceAttributes {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

const DEFAULT_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';

export class Authority {
  /** Mutable so tests can change permissions while the server runs. */
  readonly deny: DenyRule[];
  readonly tokens: Map<string, TokenIdentity>;

  constructor(
    readonly adminToken: string,
    readonly admin: UserInfo,
    deny: DenyRule[] = [],
    tokens: Record<string, TokenIdentity> = {},
  ) {
    this.deny = [...deny];
    this.tokens = new Map(Object.entries(tokens));
  }

  /**
   * The user a request's Authorization header identifies, or without one its client certificate (verified by the
   * server's client CA: CN the user, O the groups, as the x509 authenticator reads it); 401 Unauthorized otherwise.
   */
  authenticate(header: string | undefined, socket?: unknown): UserInfo {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    if (m && m[1] === this.adminToken) return this.admin;
    const sa = m ? this.tokens.get(m[1]) : undefined;
    if (sa) return { ...sa, groups: sa.groups ?? ['system:serviceaccounts', 'system:authenticated'] };
    const tls = socket as TLSSocket | undefined;
    if (!header && tls?.authorized && typeof tls.getPeerX509Certificate === 'function') {
      const subject = tls.getPeerX509Certificate()?.toLegacyObject().subject as unknown as Record<string, string | string[]> | undefined;
      const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
      const name = list(subject?.CN)[0];
      if (name) return { username: name, groups: [...list(subject?.O), 'system:authenticated'] };
    }
    throw errors.unauthorized();
  }

  allowed(user: UserInfo, a: ResourceAttributes): boolean {
    const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
    const m = (rule: string | undefined, value: string | undefined) => rule === undefined || rule === '*' || rule === (value ?? '');
    return !this.deny.some((r) => m(r.verb, a.verb) && m(r.group, a.group) && m(r.resource, resource)
      && m(r.namespace, a.namespace) && m(r.name, a.name) && m(r.user, user.username));
  }

  /** 403 Forbidden with the real API's message when the deny list matches. */
  authorize(user: UserInfo, a: ResourceAttributes): void {
    if (this.allowed(user, a)) return;
    const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
    const qualified = a.group ? `${a.resource}.${a.group}` : a.resource;
    const subject = a.name ? `${qualified} "${a.name}"` : qualified;
    const scope = a.namespace ? ` in the namespace "${a.namespace}"` : ' at the cluster scope';
    const message = `${subject} is forbidden: User "${user.username}" cannot ${a.verb} resource "${resource}" in API group "${a.group}"${scope}`;
    throw errors.forbidden({ group: a.group, plural: a.resource }, a.name ?? '', message);
  }

  /** Answers a POST to one of the review resources; returns the response body (the review with status filled). */
  review(plural: string, body: Json, user: UserInfo): JsonObject {
    if (!isObject(body)) throw errors.badRequest('the object provided is unrecognized');
    const spec = isObject(body.spec) ? body.spec : {};
    const out: JsonObject = { ...body, metadata: {} };
    switch (plural) {
      case 'selfsubjectaccessreviews':
      case 'subjectaccessreviews': {
        const subject: UserInfo = plural === 'selfsubjectaccessreviews' ? user : { username: String(spec.user ?? '') };
        const ra = isObject(spec.resourceAttributes) ? spec.resourceAttributes : undefined;
        if (!ra && !isObject(spec.nonResourceAttributes)) {
          throw errors.invalid(plural === 'subjectaccessreviews' ? 'SubjectAccessReview' : 'SelfSubjectAccessReview', 'authorization.k8s.io', '', [
            { reason: 'FieldValueRequired', field: 'spec.resourceAttributes', message: 'Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified' },
          ]);
        }
        const s = (v: Json | undefined) => (typeof v === 'string' ? v : '');
        const ok = !ra || this.allowed(subject, {
          verb: s(ra.verb), group: s(ra.group), resource: s(ra.resource), subresource: s(ra.subresource) || undefined,
          namespace: s(ra.namespace) || undefined, name: s(ra.name) || undefined,
        });
        out.status = ok ? { allowed: true, reason: 'RBAC: allowed by ClusterRoleBinding "cluster-admin"' } : { allowed: false };
        return out;
      }
      case 'tokenreviews': {
        const token = typeof spec.token === 'string' ? spec.token : '';
        const wanted = Array.isArray(spec.audiences) ? spec.audiences.map(String) : [];
        const id = this.tokens.get(token);
        const audiences = id?.audiences ?? [DEFAULT_AUDIENCE];
        const matched = wanted.length ? wanted.filter((a) => audiences.includes(a)) : audiences;
        if (!id || !matched.length) {
          out.status = { user: {}, error: id ? 'token audiences are invalid for the target audiences' : 'invalid bearer token', authenticated: false };
        } else {
          const u: JsonObject = { username: id.username, groups: id.groups ?? ['system:serviceaccounts', 'system:authenticated'] };
          if (id.uid) u.uid = id.uid;
          if (id.extra) u.extra = id.extra;
          out.status = { authenticated: true, user: u, audiences: matched };
        }
        return out;
      }
      case 'selfsubjectreviews': {
        const u: JsonObject = { username: user.username, groups: user.groups ?? ['system:authenticated'] };
        if (user.uid) u.uid = user.uid;
        out.status = { userInfo: u };
        return out;
      }
      default:
        throw errors.methodNotAllowed();
    }
  }
}
