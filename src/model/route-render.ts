// Routes as people read them: a table per rule, a list of routes, and YAML/JSON that
// `mesh route apply -f` reads back unchanged.
import { stringify } from 'yaml';
import { percentages, ROUTE_API_VERSION, type Backend, type Route, type Rule } from './route.js';
import { formatMatch } from './route-parse.js';

/** `v1 80%, v2 20%`; one decimal only when whole percentages would not be exact. */
export function formatSplit(backends: Backend[]): string {
  const total = backends.reduce((s, b) => s + b.weight, 0);
  const exact = backends.every((b) => (b.weight * 100) % total === 0);
  const shares = percentages(backends, exact ? 0 : 1);
  return backends.map((b, i) => `${b.version} ${shares[i]}%`).join(', ');
}

export function formatRetries(r: Rule['retries']): string {
  if (!r) return '-';
  return r.retryOn ? `${r.attempts} on ${r.retryOn.join(',')}` : String(r.attempts);
}

export function formatFault(f: Rule['fault']): string {
  if (!f) return '-';
  const parts: string[] = [];
  if (f.delay) parts.push(`delay ${f.delay.duration}@${f.delay.percent}%`);
  if (f.abort) parts.push(f.abort.grpcStatus !== undefined ? `abort grpc ${f.abort.grpcStatus}@${f.abort.percent}%` : `abort ${f.abort.status}@${f.abort.percent}%`);
  return parts.join(', ');
}

export function formatMatches(rule: Rule): string {
  return rule.matches ? rule.matches.map(formatMatch).join(' or ') : '(default)';
}

/** Rows of `mesh route get`: one per rule, in the order they are tried. */
export function routeRows(route: Route): string[][] {
  return route.spec.rules.map((r, i) => [String(i + 1), formatMatches(r), formatSplit(r.backends), r.timeout ?? '-', formatRetries(r.retries), formatFault(r.fault)]);
}
export const ROUTE_HEAD = ['RULE', 'MATCH', 'BACKENDS', 'TIMEOUT', 'RETRIES', 'FAULT'];

/** Service-wide settings and what happens to unmatched requests, as lines under the table. */
export function routeNotes(route: Route): string[] {
  const notes: string[] = [];
  if (route.spec.rules.every((r) => r.matches)) notes.push('Requests no rule matches go to all live versions evenly.');
  const b = route.spec.retryBudget;
  if (b) notes.push(`Retry budget: ${Math.round(b.retryRatio * 1000) / 10}% of requests + ${b.minRetriesPerSecond}/s.`);
  const f = route.spec.failureAccrual;
  if (f) notes.push(`Failure accrual: an endpoint is ejected after ${f.consecutiveFailures} consecutive failures.`);
  return notes;
}

/** Rows of `mesh route list`: a route per service (RETRIES: its default rule's); with namespaces, NAMESPACE first. */
export function listRows(routes: Route[], withNamespace: boolean): string[][] {
  return routes.map((r) => {
    const def = r.spec.rules.find((x) => !x.matches);
    const row = [r.metadata.name, String(r.spec.rules.length), def ? formatSplit(def.backends) : '(all versions evenly)', String(r.spec.rules.filter((x) => x.matches).length), formatRetries(def?.retries)];
    return withNamespace ? [r.metadata.namespace, ...row] : row;
  });
}
export const LIST_HEAD = ['NAME', 'RULES', 'DEFAULT', 'MATCH_RULES', 'RETRIES'];

/** YAML documents, one per route, in the resource form `mesh route apply -f` reads. */
export function routesYaml(routes: Route[]): string {
  return routes.map((r) => stringify(r, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
}

/** One route as JSON, or a RouteList for several (kubectl's shape). */
export function routesJson(routes: Route[] | Route): string {
  const v = Array.isArray(routes) ? { apiVersion: ROUTE_API_VERSION, kind: 'RouteList', items: routes } : routes;
  return JSON.stringify(v, null, 2) + '\n';
}
