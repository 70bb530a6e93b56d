// The authorization policy model: per namespace a default (allow or deny) and allow rules from
// clients (service names or SPIFFE identities) to services. Plain, JSON-able resources, the same on
// the local platform (the `policies` config kind) and in a Kubernetes CRD. Pure: validation here,
// request-path normalisation in path.ts, and a compiled form the inbound proxy checks per request.
import { describe, Walker } from './walker.js';
import { checkName, type WorkloadNames } from './snapshot.js';
import { normalizePath } from './path.js';


export const POLICY_API_VERSION = 'mesh.io/v1alpha1';

export type PolicyDefault = 'allow' | 'deny';

/**
 * A namespace's authorization policy. The CLI keeps one per namespace named `default`; a Kubernetes
 * namespace may hold several, which merge: their rules add up and `deny` wins over `allow`.
 */
export interface Policy {
  apiVersion: typeof POLICY_API_VERSION;
  kind: 'Policy';
  metadata: { name: string; namespace: string };
  spec: PolicySpec;
}

export interface PolicySpec {
  /**
   * What happens to a request no rule allows. `allow` admits every client (rules then change
   * nothing); `deny` admits only what a rule allows. A namespace without any Policy allows all.
   */
  default: PolicyDefault;
  /** Allow rules, in the order the CLI lists them (order never changes a decision). */
  rules: AllowRule[];
  /**
   * Whether the namespace's workloads may reach destinations outside the mesh through their sidecars:
   * allow (absent: Istio's ALLOW_ANY, Linkerd's pass-through) or deny (Istio's REGISTRY_ONLY). Merged
   * policies: deny wins.
   */
  egress?: PolicyDefault;
}

/** Admits requests from `from` to service `to` of the policy's namespace; every given field must match. */
export interface AllowRule {
  /**
   * The client: '*' (any client with a verified mesh identity), a SPIFFE identity
   * (`spiffe://<td>/ns/<ns>/sa/<sa>`, exact), a workload (`web`: the identities of its pods, in the
   * policy's namespace), `<namespace>/<workload>` for another namespace's, or a ServiceAccount
   * (`sa:web`, `<namespace>/sa:web`). On the local platform a workload's identity is its service's
   * name; on Kubernetes a workload is a Service or a Deployment (StatefulSet, ...) and its identities
   * are its pods' ServiceAccounts. Names match whatever the trust domain: proxies only accept peers of
   * their own trust domain.
   */
  from: string;
  /** A service in the policy's namespace (on Kubernetes a Service: its pods), or '*' for all of them. */
  to: string;
  /** The destination workload port (the app port the inbound proxy forwards to), 1-65535. */
  port?: number;
  /**
   * Segment-wise prefix of the normalised request path ('/api' matches /api and /api/x, not
   * /apix); begins with '/', stored normalised and without a trailing '/' (except '/' itself).
   */
  pathPrefix?: string;
}

/** The stored `policies` config document: every Policy, sorted by namespace and name. */
export interface PolicyConfig {
  policies: Policy[];
}

/** One request as the inbound proxy sees it. */
export interface AuthzRequest {
  /** The destination's namespace and service (the inbound proxy's own workload). */
  namespace: string;
  toService: string;
  /** Kubernetes: the Services that select the destination pod, checked instead of toService (any may allow). */
  toServices?: readonly string[];
  /** The peer's verified SPIFFE identity; null when the client has none (never matches a rule). */
  clientIdentity: string | null;
  /** The destination app port; rules with a port never match when it is absent. */
  port?: number;
  /**
   * The request target as received (origin form, query allowed); normalised before matching. Null for
   * an opaque TCP connection, which rules with a path prefix never match.
   */
  path: string | null;
}

export interface AuthzDecision {
  allowed: boolean;
  /** Why, for logs, metrics and a short response header; precomputed, never per request. */
  reason: string;
  /**
   * Which rule decided, as metrics label it (rule="..."): `rule N of policy ns/name`, `default allow`, `default deny`,
   * `no policy`, `invalid path`. Precomputed with the decision.
   */
  rule?: string;
}

export interface CompiledPolicy {
  check(req: AuthzRequest): AuthzDecision;
  /** Namespaces that have a policy. */
  readonly namespaces: readonly string[];
  /** Whether workloads of the namespace may reach destinations outside the mesh. */
  egressAllowed(namespace: string): boolean;
}

export interface Validation<T> {
  value?: T;
  errors: string[];
  warnings: string[];
}

// ---------------------------------------------------------------------------------------------
// Validation

const SPIFFE = /^spiffe:\/\/([a-z0-9.\-_]+)\/ns\/([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/sa\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/;


/** Why `from` is not a client reference, or undefined when it is one. */
export function fromError(from: string): string | undefined {
  if (from === '*') return undefined;
  if (from.startsWith('spiffe://')) {
    return SPIFFE.test(from) ? undefined : `'${from}' is not a mesh SPIFFE identity: use spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`;
  }
  const parts = from.split('/');
  if (parts.length > 2) return `'${from}' is not a client: use '*', a workload name, <namespace>/<workload>, sa:<service-account> or a SPIFFE identity`;
  const last = parts[parts.length - 1]!;
  const sa = last.startsWith('sa:');
  try {
    if (parts.length === 2) checkName(parts[0]!, 'namespace');
    checkName(sa ? last.slice(3) : last, sa ? 'service account' : 'workload name');
  } catch (e) {
    return (e as Error).message;
  }
  return undefined;
}

/** Why `prefix` is not a usable path prefix, or undefined; `normalizePathPrefix` gives its stored form. */
export function pathPrefixError(prefix: string): string | undefined {
  if (!prefix.startsWith('/')) return `path prefix '${prefix}' must begin with '/'`;
  if (/[?#]/.test(prefix)) return `path prefix '${prefix}' must not hold a query or fragment`;
  if (normalizePath(prefix) === null) return `path prefix '${prefix}' is not a valid path (encoded '/', '\\', NUL, control characters or a bad %-escape)`;
  return undefined;
}

/** The stored form of a valid prefix: normalised like request paths, no trailing '/'. */
export function normalizePathPrefix(prefix: string): string {
  const p = normalizePath(prefix) ?? prefix;
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

function ruleFrom(w: Walker, input: unknown, path: string): AllowRule | undefined {
  const o = w.obj(input, path, ['from', 'to', 'port', 'pathPrefix']);
  if (!o) return undefined;
  let ok = true;
  if (typeof o.from !== 'string') (w.err(`${path}.from`, `must be a string (got ${describe(o.from)})`), (ok = false));
  else {
    const e = fromError(o.from);
    if (e) (w.err(`${path}.from`, e), (ok = false));
  }
  const to = o.to === '*' ? '*' : w.name(o.to, `${path}.to`, 'service name');
  if (to === undefined) ok = false;
  const rule: AllowRule = { from: o.from as string, to: to! };
  if (o.port !== undefined) {
    if (typeof o.port !== 'number' || !Number.isInteger(o.port) || o.port < 1 || o.port > 65535) {
      w.err(`${path}.port`, `must be an integer from 1 to 65535 (got ${describe(o.port)})`);
      ok = false;
    } else rule.port = o.port;
  }
  if (o.pathPrefix !== undefined) {
    if (typeof o.pathPrefix !== 'string') (w.err(`${path}.pathPrefix`, `must be a string (got ${describe(o.pathPrefix)})`), (ok = false));
    else {
      const e = pathPrefixError(o.pathPrefix);
      if (e) (w.err(`${path}.pathPrefix`, e), (ok = false));
      else rule.pathPrefix = normalizePathPrefix(o.pathPrefix);
    }
  }
  return ok ? rule : undefined;
}

/** A rule's identity for duplicate detection and `mesh policy delete`. */
export function ruleKey(r: AllowRule): string {
  return `${r.from} ${r.to} ${r.port ?? ''} ${r.pathPrefix ?? ''}`;
}

function policyFrom(w: Walker, input: unknown, path: string): Policy | undefined {
  const at = (k: string) => (path ? `${path}.${k}` : k);
  const o = w.obj(input, path, ['apiVersion', 'kind', 'metadata', 'spec']);
  if (!o) return undefined;
  if (o.apiVersion !== POLICY_API_VERSION) w.err(at('apiVersion'), `must be ${POLICY_API_VERSION} (got ${describe(o.apiVersion)})`);
  if (o.kind !== 'Policy') w.err(at('kind'), `must be Policy (got ${describe(o.kind)})`);
  const md = w.obj(o.metadata, at('metadata'), ['name', 'namespace']);
  const name = md ? w.name(md.name, at('metadata.name'), 'policy name') : undefined;
  const namespace = md ? w.name(md.namespace, at('metadata.namespace'), 'namespace') : undefined;
  const so = w.obj(o.spec, at('spec'), ['default', 'rules', 'egress']);
  if (!so) return undefined;
  if (so.default !== 'allow' && so.default !== 'deny') w.err(at('spec.default'), `must be allow or deny (got ${describe(so.default)})`);
  if (so.egress !== undefined && so.egress !== 'allow' && so.egress !== 'deny') w.err(at('spec.egress'), `must be allow or deny (got ${describe(so.egress)})`);
  const rules: AllowRule[] = [];
  if (so.rules !== undefined && !Array.isArray(so.rules)) w.err(at('spec.rules'), `must be a list (got ${describe(so.rules)})`);
  else {
    const seen = new Map<string, number>();
    ((so.rules as unknown[] | undefined) ?? []).forEach((r, i) => {
      const rp = at(`spec.rules[${i}]`);
      const rule = ruleFrom(w, r, rp);
      if (!rule) return;
      const k = ruleKey(rule);
      const earlier = seen.get(k);
      if (earlier !== undefined) return w.err(rp, `is the same rule as rule ${earlier + 1}`);
      seen.set(k, i);
      rules.push(rule);
    });
  }
  if (name === undefined || namespace === undefined || (so.default !== 'allow' && so.default !== 'deny')) return undefined;
  const spec: PolicySpec = { default: so.default, rules };
  if (so.egress === 'allow' || so.egress === 'deny') spec.egress = so.egress;
  return { apiVersion: POLICY_API_VERSION, kind: 'Policy', metadata: { name, namespace }, spec };
}

/** Checks one untrusted Policy and returns it normalised (path prefixes in stored form). */
export function validatePolicy(input: unknown): Validation<Policy> {
  const w = new Walker();
  const value = policyFrom(w, input, '');
  return w.errors.length ? { errors: w.errors, warnings: w.warnings } : { value, errors: [], warnings: w.warnings };
}

/** Checks the whole stored document (the control plane's validator). */
export function validatePolicyConfig(input: unknown): Validation<PolicyConfig> {
  const w = new Walker();
  const o = w.obj(input, '', ['policies']);
  const list = o ? (Array.isArray(o.policies) ? o.policies : (w.err('policies', `must be a list (got ${describe(o.policies)})`), [])) : [];
  const policies: Policy[] = [];
  const seen = new Set<string>();
  list.forEach((p, i) => {
    const policy = policyFrom(w, p, `policies[${i}]`);
    if (!policy) return;
    const key = `${policy.metadata.namespace}/${policy.metadata.name}`;
    if (seen.has(key)) return w.err(`policies[${i}]`, `a second policy named ${key}`);
    seen.add(key);
    policies.push(policy);
  });
  return w.errors.length ? { errors: w.errors, warnings: [] } : { value: { policies: sortPolicies(policies) }, errors: [], warnings: [] };
}

/** The control plane's validator: the normalised document, or an Error listing what is wrong. */
export function checkPolicyConfig(value: unknown): PolicyConfig {
  const v = validatePolicyConfig(value);
  if (!v.value) throw new Error(`invalid policies: ${v.errors.join('; ')}`);
  return v.value;
}

export function sortPolicies(policies: Policy[]): Policy[] {
  const key = (p: Policy) => `${p.metadata.namespace}/${p.metadata.name}`;
  return [...policies].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** The policies in a stored (or pushed) document; nothing stored means none. */
export function policiesOf(config: unknown): Policy[] {
  const c = config as PolicyConfig | null | undefined;
  return Array.isArray(c?.policies) ? c!.policies : [];
}

export function newPolicy(namespace: string, def: PolicyDefault, rules: AllowRule[] = [], name = 'default'): Policy {
  return { apiVersion: POLICY_API_VERSION, kind: 'Policy', metadata: { name, namespace }, spec: { default: def, rules } };
}

// ---------------------------------------------------------------------------------------------
// Compilation and checking

interface CompiledRule {
  port: number | undefined;
  /** Normalised, no trailing '/'; undefined matches every path. */
  prefix: string | undefined;
  /** prefix + '/', so the segment-wise test is two startsWith/=== checks and no allocation. */
  prefixSlash: string | undefined;
  allow: AuthzDecision;
}

/** Rules for one destination service, by client key. */
interface ServiceRules {
  /** Client key → rules: a full SPIFFE ID, or `ns/sa` for service-name rules. */
  byClient: Map<string, CompiledRule[]>;
  /** Rules with from '*'. */
  anyClient: CompiledRule[];
  /** Whether any rule here looks at the path (only then is the path normalised). */
  needsPath: boolean;
}

interface NamespaceRules {
  deny: boolean;
  defaultAllow: AuthzDecision;
  defaultDeny: AuthzDecision;
  invalidPath: AuthzDecision;
  byService: Map<string, ServiceRules>;
  /** Rules with to '*', used for services with no rules of their own (merged into the others). */
  anyService: ServiceRules;
}

const NO_POLICY: AuthzDecision = Object.freeze({ allowed: true, reason: 'no policy for the namespace', rule: 'no policy' });

const emptyRules = (): ServiceRules => ({ byClient: new Map(), anyClient: [], needsPath: false });

function addRule(s: ServiceRules, clientKeys: string[] | undefined, r: CompiledRule): void {
  if (r.prefix !== undefined) s.needsPath = true;
  if (clientKeys === undefined) return void s.anyClient.push(r);
  for (const clientKey of clientKeys) {
    const list = s.byClient.get(clientKey);
    if (list) list.push(r);
    else s.byClient.set(clientKey, [r]);
  }
}

/**
 * The client keys a rule's `from` names: the SPIFFE ID, or `ns/sa` of each ServiceAccount; undefined for '*'.
 * With the platform's names (Kubernetes) a workload's keys are its pods' accounts, none while no pod runs.
 */
export function clientKeysOf(from: string, namespace: string, names?: WorkloadNames): string[] | undefined {
  if (from === '*') return undefined;
  if (from.startsWith('spiffe://')) return [from];
  const slash = from.indexOf('/');
  const ns = slash < 0 ? namespace : from.slice(0, slash);
  const name = from.slice(slash + 1);
  if (name.startsWith('sa:')) return [`${ns}/${name.slice(3)}`];
  if (!names) return [`${ns}/${name}`];
  return (names.identities[`${ns}/${name}`] ?? []).map((sa) => `${ns}/${sa}`);
}

/**
 * Compiles a policies document once per config change into maps the per-request check only looks
 * up. Throws (with every validation error) when the document is invalid, so a proxy keeps its last
 * good policy; an absent document (null/undefined) allows everything. `names` (the snapshot's, on
 * Kubernetes) says which ServiceAccounts a workload name stands for.
 */
export function compilePolicy(doc: unknown, names?: WorkloadNames): CompiledPolicy {
  let policies: Policy[] = [];
  if (doc !== undefined && doc !== null) {
    const v = validatePolicyConfig(doc);
    if (!v.value) throw new Error(`invalid policies: ${v.errors.join('; ')}`);
    policies = v.value.policies;
  }
  const namespaces = new Map<string, NamespaceRules>();
  const byNs = new Map<string, Policy[]>();
  const egressDenied = new Set<string>();
  for (const p of policies) {
    if (p.spec.egress === 'deny') egressDenied.add(p.metadata.namespace);
    const list = byNs.get(p.metadata.namespace) ?? [];
    list.push(p);
    byNs.set(p.metadata.namespace, list);
  }
  for (const [ns, list] of byNs) {
    const deny = list.some((p) => p.spec.default === 'deny');
    const nr: NamespaceRules = {
      deny,
      defaultAllow: Object.freeze({ allowed: true, reason: `allowed by default in namespace ${ns}`, rule: 'default allow' }),
      defaultDeny: Object.freeze({ allowed: false, reason: `denied by default in namespace ${ns}: no rule allows it`, rule: 'default deny' }),
      invalidPath: Object.freeze({ allowed: false, reason: `denied in namespace ${ns}: the request path is ambiguous or invalid`, rule: 'invalid path' }),
      byService: new Map(),
      anyService: emptyRules(),
    };
    const all: Array<{ rule: AllowRule; compiled: CompiledRule }> = [];
    for (const p of list) {
      p.spec.rules.forEach((rule, i) => {
        const prefix = rule.pathPrefix === undefined || rule.pathPrefix === '/' ? undefined : rule.pathPrefix;
        all.push({
          rule,
          compiled: {
            port: rule.port,
            prefix,
            prefixSlash: prefix === undefined ? undefined : `${prefix}/`,
            allow: Object.freeze({ allowed: true, reason: `allowed by rule ${i + 1} of policy ${ns}/${p.metadata.name}`, rule: `rule ${i + 1} of policy ${ns}/${p.metadata.name}` }),
          },
        });
      });
    }
    // Named services get their own rules plus the '*' ones, so a request looks in one place.
    for (const { rule } of all) if (rule.to !== '*' && !nr.byService.has(rule.to)) nr.byService.set(rule.to, emptyRules());
    for (const { rule, compiled } of all) {
      const key = clientKeysOf(rule.from, ns, names);
      if (rule.to === '*') {
        addRule(nr.anyService, key, compiled);
        for (const s of nr.byService.values()) addRule(s, key, compiled);
      } else addRule(nr.byService.get(rule.to)!, key, compiled);
    }
    namespaces.set(ns, nr);
  }

  // `ns/sa` of a client SPIFFE ID, memoised: identities are few, requests many.
  const nsSa = new Map<string, string | null>();
  const serviceKeyOf = (id: string): string | null => {
    let k = nsSa.get(id);
    if (k === undefined) {
      const m = SPIFFE.exec(id);
      k = m ? `${m[2]}/${m[4]}` : null;
      if (nsSa.size > 4096) nsSa.clear();
      nsSa.set(id, k);
    }
    return k;
  };

  const matchIn = (rules: CompiledRule[] | undefined, port: number | undefined, path: string | null): AuthzDecision | undefined => {
    if (!rules) return undefined;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      if (r.port !== undefined && r.port !== port) continue;
      if (r.prefix !== undefined && (path === null || (path !== r.prefix && !path.startsWith(r.prefixSlash!)))) continue;
      return r.allow;
    }
    return undefined;
  };

  // One destination service's rules (its own plus the '*' ones, or only those).
  const checkService = (nr: NamespaceRules, s: ServiceRules, id: string, req: AuthzRequest): AuthzDecision => {
    let path: string | null = null;
    if (s.needsPath && req.path !== null) {
      path = normalizePath(req.path);
      if (path === null) return nr.invalidPath;
    }
    const svcKey = s.byClient.size ? serviceKeyOf(id) : null;
    return (
      matchIn(s.byClient.get(id), req.port, path) ??
      (svcKey === null ? undefined : matchIn(s.byClient.get(svcKey), req.port, path)) ??
      matchIn(s.anyClient, req.port, path) ??
      nr.defaultDeny
    );
  };

  return {
    namespaces: [...namespaces.keys()].sort(),
    egressAllowed: (namespace) => !egressDenied.has(namespace),
    check(req: AuthzRequest): AuthzDecision {
      const nr = namespaces.get(req.namespace);
      if (!nr) return NO_POLICY;
      if (!nr.deny) return nr.defaultAllow;
      const id = req.clientIdentity;
      if (id === null || id === undefined) return nr.defaultDeny;
      const many = req.toServices;
      if (many !== undefined && many.length !== 1) {
        for (let i = 0; i < many.length; i++) {
          const d = checkService(nr, nr.byService.get(many[i]!) ?? nr.anyService, id, req);
          if (d.allowed) return d;
        }
        return many.length ? nr.defaultDeny : checkService(nr, nr.anyService, id, req);
      }
      return checkService(nr, nr.byService.get(many === undefined ? req.toService : many[0]!) ?? nr.anyService, id, req);
    },
  };
}
