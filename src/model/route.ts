// The route model: how a service's requests are matched and split over its versions. One plain,
// JSON-able resource per service, the same on the local platform (config/routes.json) and in the
// Kubernetes CRD; pure validation here, CLI parsing in route-parse.ts, rendering in route-render.ts.
import { describe, Walker as BaseWalker } from './walker.js';

export const ROUTE_API_VERSION = 'mesh.io/v1alpha1';

/**
 * A service's traffic policy. `metadata.name` is the service it routes (one Route per service, as
 * Linkerd's ServiceProfile is named after its service); `metadata.namespace` is the service's.
 */
export interface Route {
  apiVersion: typeof ROUTE_API_VERSION;
  kind: 'Route';
  metadata: { name: string; namespace: string };
  spec: RouteSpec;
}

export interface RouteSpec {
  /**
   * Evaluated in order; the first rule whose matches fit the request wins. The rule without
   * `matches` is the default and comes last. A request no rule matches (no default rule) goes to
   * all live endpoints of the service evenly, as if the service had no route.
   */
  rules: Rule[];
  /** Service-wide: how many retries may add to the load (Linkerd's retry budget). */
  retryBudget?: RetryBudget;
  /** Service-wide: when an endpoint is taken out of the balancer. */
  failureAccrual?: FailureAccrual;
}

export interface Rule {
  /** ORed: the rule applies when any one matches. Absent on the default rule; never empty. */
  matches?: Match[];
  /** Relative integer weights ≥ 0, not all zero; a version at most once. */
  backends: Backend[];
  /** Per-try timeout, a duration like 500ms or 2s (durationMs reads it); the proxy answers 504. */
  timeout?: string;
  retries?: Retries;
  fault?: Fault;
}

/** ANDed conditions; at least one. */
export interface Match {
  /** Header names are lower case; each at most once per match. */
  headers?: HeaderMatch[];
  /** The request path starts with it; begins with '/'. */
  pathPrefix?: string;
  /** Upper case, e.g. GET. */
  method?: string;
}

/**
 * Exactly one of `exact` and `regex`. A regex is JavaScript syntax and matches anywhere in the
 * value unless anchored with ^ and $ (Istio anchors RE2 regexes implicitly; we do not).
 */
export interface HeaderMatch {
  name: string;
  exact?: string;
  regex?: string;
}

export interface Backend {
  /** A version subset of the service (the version its workloads run with). */
  version: string;
  weight: number;
}

/** gRPC statuses a call may be retried on, as Envoy's retry_on names them, with their codes. */
export const GRPC_RETRY_ON = { cancelled: 1, 'deadline-exceeded': 4, 'resource-exhausted': 8, internal: 13, unavailable: 14 } as const;
export type GrpcRetryOn = keyof typeof GRPC_RETRY_ON;
export type RetryOn = 'connect-failure' | '5xx' | GrpcRetryOn;
export const RETRY_ON: readonly RetryOn[] = ['connect-failure', '5xx', ...Object.keys(GRPC_RETRY_ON) as GrpcRetryOn[]];

export interface Retries {
  /**
   * Retries after the first try, 1-10; never a timeout. HTTP conditions retry idempotent requests only; gRPC
   * statuses retry any call answered trailers-only (nothing yet sent to the client) whose request body was kept.
   */
  attempts: number;
  /**
   * What is retried; absent means DEFAULT_RETRY_ON. Named as Istio names it, and not `on`: YAML 1.1
   * parsers (kubectl's among them) read a key `on` as the boolean true.
   */
  retryOn?: RetryOn[];
}
export const DEFAULT_RETRY_ON: readonly RetryOn[] = ['connect-failure', '5xx'];

export interface Fault {
  /** Delay `percent` (0-100) of the requests by `duration` (like 2s). */
  delay?: { duration: string; percent: number };
  /**
   * Answer `percent` (0-100) of the requests without forwarding them: with HTTP `status` (400-599), or with gRPC
   * status `grpcStatus` (1-16; a gRPC caller gets it trailers-only, others its HTTP status as Envoy maps it). One of the two.
   */
  abort?: { status?: number; grpcStatus?: number; percent: number };
}

export interface RetryBudget {
  /** Retries may add this share of the request rate (0-1; Linkerd and Envoy use 0.2). */
  retryRatio: number;
  /** ...plus this many retries per second regardless (Linkerd uses 10). */
  minRetriesPerSecond: number;
}

export interface FailureAccrual {
  /** Consecutive failures that take an endpoint out of the balancer (Linkerd uses 7). */
  consecutiveFailures: number;
}

/** The stored `routes` config document: every route in the mesh, sorted by namespace and name. */
export interface RouteConfig {
  routes: Route[];
}

/** Live versions by `namespace/service`, as the registry reports them. */
export type KnownServices = Map<string, string[]>;

export interface Validation<T> {
  /** The normalised value when there are no errors. */
  value?: T;
  errors: string[];
  warnings: string[];
}

export const MAX_RETRY_ATTEMPTS = 10;
/** Header names as HTTP tokens, minus '~' (which the CLI's `header:NAME~REGEX` form needs). */
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|-]+$/;
const METHOD = /^[A-Z]+$/;


/** The base walker plus the route model's durations. */
class Walker extends BaseWalker {
  /** A duration string like 500ms, 2s or 1m30s, at least 1 ms; returned in canonical form. */
  duration(v: unknown, path: string): string | undefined {
    const ms = typeof v === 'string' ? durationMs(v) : undefined;
    if (ms === undefined || ms < 1) {
      this.err(path, `${describe(v)} is not a duration: use a number and a unit, like 500ms, 2s or 1m`);
      return undefined;
    }
    return formatDuration(ms);
  }
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;

/** `500ms`, `2s`, `1.5s`, `1m30s` → whole milliseconds (as Go's time.ParseDuration reads them). */
export function durationMs(text: string): number | undefined {
  if (!DURATION.test(text)) return undefined;
  let ms = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) ms += Number(m[1]) * UNITS[m[2]!]!;
  return Math.round(ms);
}

/** The canonical spelling: the largest unit that divides it (2s, 90s, 2m, 1500ms). */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}


function match(w: Walker, v: unknown, path: string): Match | undefined {
  const o = w.obj(v, path, ['headers', 'pathPrefix', 'method']);
  if (!o) return undefined;
  const out: Match = {};
  if (o.headers !== undefined) {
    const hs = w.list(o.headers, `${path}.headers`, 'must name at least one header (or leave headers out)');
    if (hs) {
      const seen = new Set<string>();
      out.headers = [];
      hs.forEach((h, i) => {
        const hp = `${path}.headers[${i}]`;
        const ho = w.obj(h, hp, ['name', 'exact', 'regex']);
        if (!ho) return;
        let name = w.str(ho.name, `${hp}.name`);
        if (name === undefined) return;
        name = name.toLowerCase();
        if (!HEADER_NAME.test(name)) return w.err(`${hp}.name`, `'${name}' is not a header name`);
        if (seen.has(name)) return w.err(hp, `header ${name} is named twice in one match; conditions in a match are ANDed`);
        seen.add(name);
        if ((ho.exact === undefined) === (ho.regex === undefined)) {
          return w.err(hp, `header ${name} needs exactly one of exact or regex`);
        }
        if (ho.exact !== undefined) {
          const exact = w.str(ho.exact, `${hp}.exact`);
          if (exact !== undefined) out.headers!.push({ name, exact });
        } else {
          const regex = w.str(ho.regex, `${hp}.regex`);
          if (regex === undefined) return;
          const bad = regexError(regex);
          if (bad) return w.err(`${hp}.regex`, `'${regex}' is not a valid regular expression: ${bad}`);
          out.headers!.push({ name, regex });
        }
      });
    }
  }
  if (o.pathPrefix !== undefined) {
    const p = w.str(o.pathPrefix, `${path}.pathPrefix`);
    if (p !== undefined && !p.startsWith('/')) w.err(`${path}.pathPrefix`, `'${p}' must start with /`);
    else if (p !== undefined) out.pathPrefix = p;
  }
  if (o.method !== undefined) {
    const m = w.str(o.method, `${path}.method`);
    if (m !== undefined && !METHOD.test(m.toUpperCase())) w.err(`${path}.method`, `'${m}' is not an HTTP method`);
    else if (m !== undefined) out.method = m.toUpperCase();
  }
  if (o.headers === undefined && o.pathPrefix === undefined && o.method === undefined) {
    w.err(path, 'a match needs at least one of headers, pathPrefix or method');
  }
  return out;
}

export function regexError(source: string): string | undefined {
  try {
    new RegExp(source);
    return undefined;
  } catch (e) {
    return (e as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /, '');
  }
}

function rule(w: Walker, v: unknown, path: string): Rule | undefined {
  const o = w.obj(v, path, ['matches', 'backends', 'timeout', 'retries', 'fault']);
  if (!o) return undefined;
  // Built in one key order (matches, backends, timeout, retries, fault): renderings are stable.
  const out = {} as Rule;
  if (o.matches !== undefined) {
    const ms = w.list(o.matches, `${path}.matches`, 'must hold at least one match; leave matches out for the default rule');
    if (ms) out.matches = ms.map((m, i) => match(w, m, `${path}.matches[${i}]`)).filter((m): m is Match => m !== undefined);
  }
  out.backends = [];
  const bs = w.list(o.backends, `${path}.backends`, 'must name at least one version');
  if (bs) {
    const seen = new Set<string>();
    let total = 0;
    bs.forEach((b, i) => {
      const bp = `${path}.backends[${i}]`;
      const bo = w.obj(b, bp, ['version', 'weight']);
      if (!bo) return;
      const version = w.name(bo.version, `${bp}.version`, 'version');
      const weight = w.int(bo.weight, `${bp}.weight`, 0);
      if (version === undefined || weight === undefined) return;
      if (seen.has(version)) return w.err(bp, `version ${version} is named twice; give it one weight`);
      seen.add(version);
      total += weight;
      out.backends.push({ version, weight });
    });
    if (out.backends.length === bs.length && total === 0) w.err(`${path}.backends`, 'weights are all zero: give at least one version a weight above 0');
  }
  if (o.timeout !== undefined) out.timeout = w.duration(o.timeout, `${path}.timeout`);
  if (o.retries !== undefined) {
    const ro = w.obj(o.retries, `${path}.retries`, ['attempts', 'retryOn']);
    if (ro) {
      const attempts = w.int(ro.attempts, `${path}.retries.attempts`, 1, MAX_RETRY_ATTEMPTS);
      let on: RetryOn[] | undefined;
      if (ro.retryOn !== undefined) {
        const list = w.list(ro.retryOn, `${path}.retries.retryOn`, `must name at least one of ${RETRY_ON.join(', ')} (or leave it out)`);
        if (list) {
          on = [];
          for (const [i, x] of list.entries()) {
            if (!RETRY_ON.includes(x as RetryOn)) w.err(`${path}.retries.retryOn[${i}]`, `${describe(x)} is not one of ${RETRY_ON.join(', ')}`);
            else if (on.includes(x as RetryOn)) w.err(`${path}.retries.retryOn[${i}]`, `${x} is named twice`);
            else on.push(x as RetryOn);
          }
          // One canonical order, so equal settings compare equal.
          on.sort((a, b) => RETRY_ON.indexOf(a) - RETRY_ON.indexOf(b));
        }
      }
      if (attempts !== undefined) out.retries = on ? { attempts, retryOn: on } : { attempts };
    }
  }
  if (o.fault !== undefined) {
    const fo = w.obj(o.fault, `${path}.fault`, ['delay', 'abort']);
    if (fo) {
      const f: Fault = {};
      if (fo.delay !== undefined) {
        const d = w.obj(fo.delay, `${path}.fault.delay`, ['duration', 'percent']);
        if (d) {
          const duration = w.duration(d.duration, `${path}.fault.delay.duration`);
          const percent = w.num(d.percent, `${path}.fault.delay.percent`, 0, 100);
          if (duration !== undefined && percent !== undefined) f.delay = { duration, percent };
        }
      }
      if (fo.abort !== undefined) {
        const a = w.obj(fo.abort, `${path}.fault.abort`, ['status', 'grpcStatus', 'percent']);
        if (a) {
          const grpc = a.grpcStatus !== undefined;
          const percent = w.num(a.percent, `${path}.fault.abort.percent`, 0, 100);
          if (grpc === (a.status !== undefined)) w.err(`${path}.fault.abort`, 'needs exactly one of status (HTTP, 400-599) or grpcStatus (1-16)');
          else {
            const status = grpc ? w.int(a.grpcStatus, `${path}.fault.abort.grpcStatus`, 1, 16) : w.int(a.status, `${path}.fault.abort.status`, 400, 599);
            if (status !== undefined && percent !== undefined) f.abort = grpc ? { grpcStatus: status, percent } : { status, percent };
          }
        }
      }
      if (fo.delay === undefined && fo.abort === undefined) w.err(`${path}.fault`, 'needs a delay or an abort (or leave fault out)');
      else out.fault = f;
    }
  }
  return out;
}

/** A canonical key for a rule's matches: equal keys match the same requests. */
export function matchesKey(matches: Match[] | undefined): string {
  if (!matches) return '';
  const one = (m: Match) =>
    JSON.stringify([
      [...(m.headers ?? [])].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((h) => [h.name, h.exact ?? null, h.regex ?? null]),
      m.pathPrefix ?? null,
      m.method ?? null,
    ]);
  return JSON.stringify([...new Set(matches.map(one))].sort());
}

/**
 * Checks an untrusted route document and returns it normalised (header names lower case, methods
 * upper case, durations in canonical form). With `known` (live versions by namespace/service), an unknown
 * service is an error and a version without a live endpoint a warning.
 */
export function validateRoute(input: unknown, known?: KnownServices): Validation<Route> {
  const w = new Walker();
  const value = routeFrom(w, input, '');
  if (value && known) checkKnown(w, value, known);
  return w.errors.length ? { errors: w.errors, warnings: w.warnings } : { value, errors: [], warnings: w.warnings };
}

function routeFrom(w: Walker, input: unknown, path: string): Route | undefined {
  const at = (k: string) => (path ? `${path}.${k}` : k);
  const o = w.obj(input, path, ['apiVersion', 'kind', 'metadata', 'spec']);
  if (!o) return undefined;
  if (o.apiVersion !== ROUTE_API_VERSION) w.err(at('apiVersion'), `must be ${ROUTE_API_VERSION} (got ${describe(o.apiVersion)})`);
  if (o.kind !== 'Route') w.err(at('kind'), `must be Route (got ${describe(o.kind)})`);
  const md = w.obj(o.metadata, at('metadata'), ['name', 'namespace']);
  const name = md ? w.name(md.name, at('metadata.name'), 'service name') : undefined;
  const namespace = md ? (md.namespace === undefined ? 'default' : w.name(md.namespace, at('metadata.namespace'), 'namespace')) : undefined;
  const so = w.obj(o.spec, at('spec'), ['rules', 'retryBudget', 'failureAccrual']);
  if (!so) return undefined;
  const spec: RouteSpec = { rules: [] };
  const rs = w.list(so.rules, at('spec.rules'), "must hold at least one rule; 'mesh route clear' removes a route");
  if (rs) {
    const seen = new Map<string, number>();
    rs.forEach((r, i) => {
      const rp = at(`spec.rules[${i}]`);
      const parsed = rule(w, r, rp);
      if (!parsed) return;
      const key = matchesKey(parsed.matches);
      const earlier = seen.get(key);
      if (earlier !== undefined) {
        w.err(rp, parsed.matches ? `has the same matches as rule ${earlier + 1}, so it would never apply` : `is a second default rule (no matches); a route has at most one`);
      } else seen.set(key, i);
      if (!parsed.matches && i !== rs.length - 1) w.err(rp, 'is the default rule (no matches) but not the last one: rules after it would never apply');
      spec.rules.push(parsed);
    });
  }
  if (so.retryBudget !== undefined) {
    const b = w.obj(so.retryBudget, at('spec.retryBudget'), ['retryRatio', 'minRetriesPerSecond']);
    if (b) {
      const retryRatio = w.num(b.retryRatio, at('spec.retryBudget.retryRatio'), 0, 1);
      const minRetriesPerSecond = w.int(b.minRetriesPerSecond, at('spec.retryBudget.minRetriesPerSecond'), 0);
      if (retryRatio !== undefined && minRetriesPerSecond !== undefined) spec.retryBudget = { retryRatio, minRetriesPerSecond };
    }
  }
  if (so.failureAccrual !== undefined) {
    const f = w.obj(so.failureAccrual, at('spec.failureAccrual'), ['consecutiveFailures']);
    const n = f ? w.int(f.consecutiveFailures, at('spec.failureAccrual.consecutiveFailures'), 1) : undefined;
    if (n !== undefined) spec.failureAccrual = { consecutiveFailures: n };
  }
  if (name === undefined || namespace === undefined) return undefined;
  return { apiVersion: ROUTE_API_VERSION, kind: 'Route', metadata: { name, namespace }, spec };
}

function checkKnown(w: Walker, r: Route, known: KnownServices): void {
  const { name, namespace } = r.metadata;
  const live = known.get(`${namespace}/${name}`);
  if (!live) {
    const here = [...known.keys()].filter((k) => k.startsWith(`${namespace}/`)).map((k) => k.slice(namespace.length + 1)).sort();
    w.err('', `service ${name} has no live endpoint in namespace ${namespace} (${here.length ? `known: ${here.join(', ')}` : 'no services run there'})`);
    return;
  }
  const missing = new Set<string>();
  for (const rl of r.spec.rules) for (const b of rl.backends) if (b.weight > 0 && !live.includes(b.version)) missing.add(b.version);
  for (const v of missing) {
    w.warnings.push(`version ${v} of ${name} has no live endpoint (live: ${[...live].sort().join(', ')}); its share of requests fails with 503 until one runs`);
  }
}

/** Checks the whole stored document (the control plane's validator): structure only. */
export function validateRouteConfig(input: unknown): Validation<RouteConfig> {
  const w = new Walker();
  const o = w.obj(input, '', ['routes']);
  const list = o ? (Array.isArray(o.routes) ? o.routes : (w.err('routes', `must be a list (got ${describe(o.routes)})`), [])) : [];
  const routes: Route[] = [];
  const seen = new Set<string>();
  list.forEach((r, i) => {
    const route = routeFrom(w, r, `routes[${i}]`);
    if (!route) return;
    const key = `${route.metadata.namespace}/${route.metadata.name}`;
    if (seen.has(key)) return w.err(`routes[${i}]`, `a second route for ${key}; a service has one route`);
    seen.add(key);
    routes.push(route);
  });
  return w.errors.length ? { errors: w.errors, warnings: [] } : { value: { routes: sortRoutes(routes) }, errors: [], warnings: [] };
}

export function sortRoutes(routes: Route[]): Route[] {
  const key = (r: Route) => `${r.metadata.namespace}/${r.metadata.name}`;
  return [...routes].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** The routes in a stored (or pushed) document; nothing stored means no routes. */
export function routesOf(config: unknown): Route[] {
  const c = config as RouteConfig | null | undefined;
  return Array.isArray(c?.routes) ? c!.routes : [];
}

export function findRoute(config: unknown, namespace: string, service: string): Route | undefined {
  return routesOf(config).find((r) => r.metadata.namespace === namespace && r.metadata.name === service);
}

/** A document with `route` added or replaced (undefined removes the service's route). */
export function withRoute(config: unknown, namespace: string, service: string, route: Route | undefined): RouteConfig {
  const others = routesOf(config).filter((r) => !(r.metadata.namespace === namespace && r.metadata.name === service));
  return { routes: sortRoutes(route ? [...others, route] : others) };
}

export function newRoute(namespace: string, service: string, rules: Rule[] = []): Route {
  return { apiVersion: ROUTE_API_VERSION, kind: 'Route', metadata: { name: service, namespace }, spec: { rules } };
}

/**
 * Each backend's share in percent, rounded to `decimals` by largest remainder so the shown shares
 * always add up to exactly 100.
 */
export function percentages(backends: Backend[], decimals = 0): number[] {
  const total = backends.reduce((s, b) => s + b.weight, 0);
  if (total === 0) return backends.map(() => 0);
  const scale = 100 * 10 ** decimals;
  const exact = backends.map((b) => (b.weight * scale) / total);
  const floors = exact.map(Math.floor);
  let left = scale - floors.reduce((s, x) => s + x, 0);
  const order = exact.map((x, i) => [x - floors[i]!, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, i] of order) {
    if (left <= 0) break;
    floors[i]!++;
    left--;
  }
  return floors.map((x) => x / 10 ** decimals);
}

/** The control plane's validator for the `routes` kind: the normalised document, or an error listing what is wrong. */
export function checkRouteConfig(value: unknown): RouteConfig {
  const v = validateRouteConfig(value);
  if (!v.value) throw new Error(`invalid routes: ${v.errors.join('; ')}`);
  return v.value;
}
