// What users type, turned into the route model: the CLI's specs (v1=80 v2=20, --match
// header:end-user=jason, --fault-delay 2s@10%) and YAML/JSON documents for `mesh route apply`.
import { parseAllDocuments } from 'yaml';
import { MeshError } from '../util/errors.js';
import { checkName } from './snapshot.js';
import {
  durationMs, formatDuration, matchesKey, newRoute, regexError, MAX_RETRY_ATTEMPTS, RETRY_ON,
  type Backend, type HeaderMatch, type Match, type RetryOn, type Route, type Rule,
} from './route.js';


const BACKENDS_HINT = 'name versions with integer weights, like: v1=80 v2=20 (or one version alone: v2)';
export const MATCH_HINT = 'use header:NAME=VALUE, header:NAME~REGEX, path:/PREFIX or method:GET, joined with commas to require all';

/**
 * `v1=80 v2=20` (or `v1=80,v2=20`) → weighted backends; versions without weights split evenly
 * (`v2` alone → v2 weight 100). Mixing the two forms is refused: the intent is unclear.
 */
export function parseBackends(args: string[]): Backend[] {
  const parts = args.flatMap((a) => a.split(',')).map((p) => p.trim()).filter((p) => p !== '');
  if (!parts.length) throw new MeshError('no versions given', BACKENDS_HINT);
  const out: { version: string; weight?: number }[] = [];
  for (const p of parts) {
    const m = /^([^=]+)(?:=(.*))?$/.exec(p)!;
    const version = m[1]!;
    try {
      checkName(version, 'version');
    } catch (e) {
      throw new MeshError((e as Error).message, BACKENDS_HINT);
    }
    if (out.some((b) => b.version === version)) throw new MeshError(`version ${version} is named twice`, 'give each version one weight');
    if (m[2] === undefined) {
      out.push({ version });
      continue;
    }
    if (!/^\d+$/.test(m[2]) || !Number.isSafeInteger(Number(m[2]))) {
      throw new MeshError(`weight '${m[2]}' of ${version} is not an integer ≥ 0`, BACKENDS_HINT);
    }
    out.push({ version, weight: Number(m[2]) });
  }
  const weighted = out.filter((b) => b.weight !== undefined).length;
  if (weighted && weighted !== out.length) {
    throw new MeshError(`some versions have weights and some do not (${parts.join(' ')})`, BACKENDS_HINT);
  }
  if (!weighted) return out.map((b) => ({ version: b.version, weight: out.length === 1 ? 100 : 1 }));
  if (out.every((b) => b.weight === 0)) throw new MeshError('the weights are all zero', 'give at least one version a weight above 0');
  return out as Backend[];
}

/**
 * One match from `header:end-user=jason,path:/api,method:GET` (conditions ANDed). Commas split only
 * before a known key, so a regex like `a{1,3}` or a value with commas stays whole.
 */
export function parseMatch(spec: string): Match {
  const parts = spec.split(/,(?=(?:header|path|method):)/);
  const headers: HeaderMatch[] = [];
  const out: Match = {};
  for (const part of parts) {
    const colon = part.indexOf(':');
    const key = colon < 0 ? '' : part.slice(0, colon);
    const rest = colon < 0 ? '' : part.slice(colon + 1);
    if (key === 'header') {
      const at = rest.search(/[=~]/);
      const name = (at < 0 ? rest : rest.slice(0, at)).toLowerCase();
      if (!name) throw new MeshError(`'${part}' names no header`, MATCH_HINT);
      if (at < 0) throw new MeshError(`'${part}' needs a value`, `use header:${name}=VALUE for an exact value or header:${name}~REGEX`);
      if (!/^[a-z0-9!#$%&'*+.^_`|-]+$/.test(name)) throw new MeshError(`'${name}' is not a header name`, MATCH_HINT);
      if (headers.some((h) => h.name === name)) throw new MeshError(`header ${name} is named twice in '${spec}'`, 'conditions joined with commas must all hold; repeat --match for either-or');
      const value = rest.slice(at + 1);
      if (rest[at] === '=') headers.push({ name, exact: value });
      else {
        const bad = regexError(value);
        if (bad) throw new MeshError(`'${value}' is not a valid regular expression: ${bad}`, 'JavaScript syntax, e.g. header:end-user~^ja.*');
        headers.push({ name, regex: value });
      }
    } else if (key === 'path') {
      if (out.pathPrefix !== undefined) throw new MeshError(`two paths in '${spec}'`, 'repeat --match for either-or');
      if (!rest.startsWith('/')) throw new MeshError(`path '${rest}' must start with /`, 'e.g. path:/api');
      out.pathPrefix = rest;
    } else if (key === 'method') {
      if (out.method !== undefined) throw new MeshError(`two methods in '${spec}'`, 'repeat --match for either-or');
      if (!/^[A-Za-z]+$/.test(rest)) throw new MeshError(`'${rest}' is not an HTTP method`, 'e.g. method:GET');
      out.method = rest.toUpperCase();
    } else {
      throw new MeshError(`'${part}' is not a match`, MATCH_HINT);
    }
  }
  return headers.length ? { headers, ...out } : out;
}

/** The spelling parseMatch reads back. */
export function formatMatch(m: Match): string {
  const parts = (m.headers ?? []).map((h) => (h.exact !== undefined ? `header:${h.name}=${h.exact}` : `header:${h.name}~${h.regex}`));
  if (m.pathPrefix !== undefined) parts.push(`path:${m.pathPrefix}`);
  if (m.method !== undefined) parts.push(`method:${m.method}`);
  return parts.join(',');
}

function duration(text: string, what: string, example: string): string {
  const ms = durationMs(text);
  if (ms === undefined || ms < 1) throw new MeshError(`${what} '${text}' is not a duration`, `use a number and a unit, like ${example}`);
  return formatDuration(ms);
}

function percent(text: string | undefined, spec: string, example: string): number {
  if (text === undefined) return 100;
  const m = /^(\d+(?:\.\d+)?)%?$/.exec(text);
  const p = m ? Number(m[1]) : NaN;
  if (!(p >= 0 && p <= 100)) throw new MeshError(`'${text}' in '${spec}' is not a percentage from 0 to 100`, `e.g. ${example}`);
  return p;
}

/** `2s@10%` → delay 10% of the requests by 2 s; without `@` every request. */
export function parseFaultDelay(spec: string): { duration: string; percent: number } {
  const [d, p, extra] = spec.split('@');
  if (extra !== undefined) throw new MeshError(`'${spec}' is not a delay`, 'e.g. --fault-delay 2s@10%');
  return { duration: duration(d!, 'delay', '2s@10%'), percent: percent(p, spec, '--fault-delay 2s@10%') };
}

/** `503@5%` → answer 5% of the requests with 503 without forwarding them. */
export function parseFaultAbort(spec: string): { status: number; percent: number } {
  const [s, p, extra] = spec.split('@');
  const status = /^\d{3}$/.test(s!) ? Number(s) : NaN;
  if (extra !== undefined || !(status >= 400 && status <= 599)) {
    throw new MeshError(`'${spec}' is not an abort`, 'give a status from 400 to 599 and a share, e.g. --fault-abort 503@5%');
  }
  return { status, percent: percent(p, spec, '--fault-abort 503@5%') };
}

/** gRPC status names by code (0-16), lower case with dashes, as the CLI reads and Envoy's retry_on spells them. */
export const GRPC_CODE_NAMES = [
  'ok', 'cancelled', 'unknown', 'invalid-argument', 'deadline-exceeded', 'not-found', 'already-exists', 'permission-denied',
  'resource-exhausted', 'failed-precondition', 'aborted', 'out-of-range', 'unimplemented', 'internal', 'unavailable', 'data-loss', 'unauthenticated',
] as const;

/** `14@5%` or `unavailable@5%` → answer 5% of the calls with that gRPC status (1-16) without forwarding them. */
export function parseFaultAbortGrpc(spec: string): { grpcStatus: number; percent: number } {
  const [s, p, extra] = spec.split('@');
  const name = s!.toLowerCase().replace(/_/g, '-');
  const code = /^\d{1,2}$/.test(s!) ? Number(s) : GRPC_CODE_NAMES.indexOf(name as (typeof GRPC_CODE_NAMES)[number]);
  if (extra !== undefined || !(code >= 1 && code <= 16)) {
    throw new MeshError(`'${spec}' is not a gRPC abort`, 'give a gRPC status from 1 to 16 (or its name) and a share, e.g. --fault-abort-grpc 14@5% or unavailable@5%');
  }
  return { grpcStatus: code, percent: percent(p, spec, '--fault-abort-grpc 14@5%') };
}

export function parseRetries(attempts: string, on?: string): { attempts: number; retryOn?: RetryOn[] } {
  const n = /^\d+$/.test(attempts) ? Number(attempts) : NaN;
  if (!(n >= 1 && n <= MAX_RETRY_ATTEMPTS)) throw new MeshError(`retries '${attempts}' is not a number from 1 to ${MAX_RETRY_ATTEMPTS}`, 'e.g. --retries 3');
  if (on === undefined) return { attempts: n };
  const list = on.split(',').map((x) => x.trim()).filter(Boolean);
  const bad = list.filter((x) => !RETRY_ON.includes(x as RetryOn));
  if (bad.length || !list.length) throw new MeshError(`cannot retry on '${bad.join(',') || on}'`, `use ${RETRY_ON.join(', ')} (comma-separated; the last five are gRPC statuses)`);
  return { attempts: n, retryOn: RETRY_ON.filter((x) => list.includes(x)) };
}

export interface RuleFlags {
  /** Each entry one match; entries are ORed. */
  match?: string[];
  timeout?: string;
  retries?: string;
  retryOn?: string;
  faultDelay?: string;
  faultAbort?: string;
  faultAbortGrpc?: string;
}

/** The rule `mesh route set SERVICE VERSIONS... [flags]` describes. */
export function ruleFromCli(versions: string[], f: RuleFlags): Rule {
  const rule = {} as Rule;
  if (f.match?.length) rule.matches = f.match.map(parseMatch);
  rule.backends = parseBackends(versions);
  if (f.timeout !== undefined) rule.timeout = duration(f.timeout, 'timeout', '500ms or 2s');
  if (f.retryOn !== undefined && f.retries === undefined) throw new MeshError('--retry-on needs --retries', 'e.g. --retries 3 --retry-on 5xx');
  if (f.retries !== undefined) rule.retries = parseRetries(f.retries, f.retryOn);
  if (f.faultAbort !== undefined && f.faultAbortGrpc !== undefined) throw new MeshError('--fault-abort and --fault-abort-grpc both given', 'an abort answers with an HTTP status or a gRPC status: pick one');
  if (f.faultDelay !== undefined || f.faultAbort !== undefined || f.faultAbortGrpc !== undefined) {
    rule.fault = {};
    if (f.faultDelay !== undefined) rule.fault.delay = parseFaultDelay(f.faultDelay);
    if (f.faultAbort !== undefined) rule.fault.abort = parseFaultAbort(f.faultAbort);
    if (f.faultAbortGrpc !== undefined) rule.fault.abort = parseFaultAbortGrpc(f.faultAbortGrpc);
  }
  return rule;
}

/**
 * The route with `rule` in it: a rule with the same matches (or the default, when `rule` has none)
 * is replaced in place; a new match rule goes last before the default, which stays last.
 */
export function setRule(route: Route | undefined, namespace: string, service: string, rule: Rule): Route {
  const base = route ?? newRoute(namespace, service);
  const rules = [...base.spec.rules];
  const key = matchesKey(rule.matches);
  const same = rules.findIndex((r) => matchesKey(r.matches) === key);
  if (same >= 0) rules[same] = rule;
  else if (!rule.matches) rules.push(rule);
  else {
    const def = rules.findIndex((r) => !r.matches);
    rules.splice(def < 0 ? rules.length : def, 0, rule);
  }
  return { ...base, spec: { ...base.spec, rules } };
}

/**
 * The route documents in a YAML or JSON text: one per YAML document, a RouteList's items, or the
 * stored {routes: [...]} form. Syntax errors carry the line; the shapes are checked by validateRoute.
 */
export function parseRouteDocuments(text: string, source = 'input'): unknown[] {
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  // parseAllDocuments returns an EmptyStream (no documents) for blank input.
  const list = Array.isArray(docs) ? docs : [];
  const out: unknown[] = [];
  for (const doc of list) {
    const err = doc.errors[0];
    if (err) {
      const line = err.linePos?.[0];
      throw new MeshError(`${source}${line ? `:${line.line}:${line.col}` : ''}: ${err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`, 'fix the YAML syntax');
    }
    const v = doc.toJS({ maxAliasCount: 100 }) as unknown;
    if (v === null || v === undefined) continue;
    const o = v as Record<string, unknown>;
    if (Array.isArray(v)) out.push(...v);
    else if (o.kind === 'RouteList' && Array.isArray(o.items)) out.push(...o.items);
    else if (o.kind === undefined && Array.isArray(o.routes)) out.push(...o.routes);
    else out.push(v);
  }
  if (!out.length) throw new MeshError(`${source} holds no route`, "write one as 'mesh route get SERVICE -o yaml' prints it");
  return out;
}
