// Label and field selectors with the grammar and matching rules of k8s.io/apimachinery.
import { errors, isObject, type Json, type KubeObject } from './types.js';

export type Matcher = (obj: KubeObject) => boolean;

type Requirement =
  | { op: 'exists' | '!exists'; key: string }
  | { op: 'in' | 'notin'; key: string; values: string[] }
  | { op: '=' | '!='; key: string; value: string }
  | { op: '>' | '<'; key: string; value: number };

const KEY = String.raw`[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?`;
const VALUE = String.raw`(?:[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?`;
const SET_RE = new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\(([^)]*)\\)$`);
const CMP_RE = new RegExp(`^(${KEY})\\s*(==|!=|=|>|<)\\s*(${VALUE})$`);
const EXISTS_RE = new RegExp(`^(!?)\\s*(${KEY})$`);
const VALUE_RE = new RegExp(`^${VALUE}$`);

/** Splits on commas that are not inside a parenthesised value set. */
function splitTerms(selector: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      terms.push(cur);
      cur = '';
    } else cur += ch;
  }
  terms.push(cur);
  return terms.map((t) => t.trim()).filter((t) => t.length > 0);
}

function parseRequirement(term: string): Requirement {
  let m = SET_RE.exec(term);
  if (m) {
    const values = m[4].split(',').map((v) => v.trim());
    if (values.some((v) => !VALUE_RE.test(v))) throw errors.badRequest(`unable to parse requirement: invalid label value in "${term}"`);
    return { op: m[3] as 'in' | 'notin', key: m[1], values };
  }
  m = CMP_RE.exec(term);
  if (m) {
    const [key, op, value] = [m[1], m[3], m[4]];
    if (op === '>' || op === '<') {
      if (!/^-?\d+$/.test(value)) throw errors.badRequest(`unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer`);
      return { op, key, value: Number(value) };
    }
    return { op: op === '!=' ? '!=' : '=', key, value };
  }
  m = EXISTS_RE.exec(term);
  if (m) return { op: m[1] ? '!exists' : 'exists', key: m[2] };
  throw errors.badRequest(`unable to parse requirement: found '${term}', expected: key, !key, key=value, key!=value, key in (...), key notin (...)`);
}

function matches(req: Requirement, labels: Record<string, string>): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, req.key);
  const val = labels[req.key];
  switch (req.op) {
    case 'exists': return has;
    case '!exists': return !has;
    case 'in': return has && req.values.includes(val);
    case 'notin': return !has || !req.values.includes(val);
    case '=': return has && val === req.value;
    case '!=': return !has || val !== req.value;
    case '>': return has && /^-?\d+$/.test(val) && Number(val) > req.value;
    case '<': return has && /^-?\d+$/.test(val) && Number(val) < req.value;
  }
}

/** Parses a labelSelector query value; throws 400 BadRequest on bad syntax like the real API. */
export function parseLabelSelector(selector: string | null | undefined): Matcher {
  const reqs = splitTerms(selector ?? '').map(parseRequirement);
  return (obj) => {
    const labels = obj.metadata.labels ?? {};
    return reqs.every((r) => matches(r, labels));
  };
}

/** Renders a structured LabelSelector (matchLabels/matchExpressions) as a selector string, as /scale reports it. */
export function labelSelectorToString(sel: Json | undefined): string {
  if (!isObject(sel)) return '';
  const parts: string[] = [];
  if (isObject(sel.matchLabels)) for (const [k, v] of Object.entries(sel.matchLabels)) parts.push(`${k}=${String(v)}`);
  for (const e of Array.isArray(sel.matchExpressions) ? sel.matchExpressions.filter(isObject) : []) {
    const values = Array.isArray(e.values) ? e.values.map(String).join(',') : '';
    const key = String(e.key);
    if (e.operator === 'In') parts.push(`${key} in (${values})`);
    else if (e.operator === 'NotIn') parts.push(`${key} notin (${values})`);
    else if (e.operator === 'Exists') parts.push(key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${key}`);
  }
  return parts.join(',');
}

function fieldValue(obj: KubeObject, path: string): string {
  let cur: Json | undefined = obj;
  for (const seg of path.split('.')) cur = isObject(cur) ? cur[seg] : undefined;
  return cur === undefined || cur === null ? '' : typeof cur === 'object' ? JSON.stringify(cur) : String(cur);
}

/** Parses a fieldSelector; only metadata.name, metadata.namespace and the resource's own field labels are supported. */
export function parseFieldSelector(selector: string | null | undefined, supported: readonly string[]): Matcher {
  const allowed = new Set(['metadata.name', 'metadata.namespace', ...supported]);
  const reqs = splitTerms(selector ?? '').map((term) => {
    const m = /^([^=!]+?)\s*(==|!=|=)\s*(.*)$/.exec(term);
    if (!m) throw errors.badRequest(`invalid selector: '${selector}'; can't understand '${term}'`);
    const key = m[1].trim();
    if (!allowed.has(key)) throw errors.badRequest(`field label not supported: ${key}`);
    return { key, negate: m[2] === '!=', value: m[3].trim() };
  });
  return (obj) => reqs.every((r) => (fieldValue(obj, r.key) === r.value) !== r.negate);
}
