// Pure edits and rendering of the policies document, for `mesh policy` (and tests): each takes the
// stored document and returns the next one, or throws a MeshError saying what is wrong.
import { MeshError } from '../util/errors.js';
import { checkName } from './snapshot.js';
import {
  fromError,
  newPolicy,
  normalizePathPrefix,
  pathPrefixError,
  policiesOf,
  ruleKey,
  sortPolicies,
  type AllowRule,
  type Policy,
  type PolicyConfig,
  type PolicyDefault,
} from './policy.js';

/** The Policy `mesh policy` edits in each namespace. */
export const CLI_POLICY_NAME = 'default';

export interface RuleFlags {
  from?: string;
  to?: string;
  port?: string;
  pathPrefix?: string;
}

/** A rule from CLI flags, checked field by field so the error names the flag. */
export function ruleFromFlags(f: RuleFlags): AllowRule {
  if (!f.from) throw new MeshError('--from is required', "name the client: a workload (web), <namespace>/<workload>, sa:<service-account>, a SPIFFE identity or '*'");
  if (!f.to) throw new MeshError('--to is required', "name the destination service in the namespace (-n), or '*' for all of them");
  const fe = fromError(f.from);
  if (fe) throw new MeshError(`--from: ${fe}`, "use a workload (web), <namespace>/<workload>, sa:<service-account>, spiffe://<td>/ns/<ns>/sa/<sa> or '*'");
  if (f.to !== '*') {
    try {
      checkName(f.to, 'service name');
    } catch (e) {
      throw new MeshError(`--to: ${(e as Error).message}`, "'mesh workloads' lists the services that run");
    }
  }
  const rule: AllowRule = { from: f.from, to: f.to };
  if (f.port !== undefined) {
    const n = Number(f.port);
    if (!/^\d+$/.test(f.port) || n < 1 || n > 65535) throw new MeshError(`--port '${f.port}' is not a port number`, 'use 1-65535: the port the destination app listens on');
    rule.port = n;
  }
  if (f.pathPrefix !== undefined) {
    const pe = pathPrefixError(f.pathPrefix);
    if (pe) throw new MeshError(`--path-prefix: ${pe}`, 'use a plain path like /api/v1');
    rule.pathPrefix = normalizePathPrefix(f.pathPrefix);
  }
  return rule;
}

function replace(config: unknown, namespace: string, policy: Policy | undefined): PolicyConfig {
  const others = policiesOf(config).filter((p) => !(p.metadata.namespace === namespace && p.metadata.name === CLI_POLICY_NAME));
  return { policies: sortPolicies(policy ? [...others, policy] : others) };
}

const cliPolicy = (config: unknown, namespace: string): Policy | undefined =>
  policiesOf(config).find((p) => p.metadata.namespace === namespace && p.metadata.name === CLI_POLICY_NAME);

/** The namespace's effective default: deny when any of its policies says deny; allow without any. */
export function effectiveDefault(config: unknown, namespace: string): PolicyDefault | undefined {
  const mine = policiesOf(config).filter((p) => p.metadata.namespace === namespace);
  if (!mine.length) return undefined;
  return mine.some((p) => p.spec.default === 'deny') ? 'deny' : 'allow';
}

export function setDefault(config: unknown, namespace: string, def: PolicyDefault): PolicyConfig {
  const p = cliPolicy(config, namespace);
  return replace(config, namespace, p ? { ...p, spec: { ...p.spec, default: def } } : newPolicy(namespace, def, [], CLI_POLICY_NAME));
}

/** Sets whether the namespace's workloads may reach destinations outside the mesh (a new policy allows by default). */
export function setEgress(config: unknown, namespace: string, egress: PolicyDefault): PolicyConfig {
  const p = cliPolicy(config, namespace) ?? newPolicy(namespace, 'allow', [], CLI_POLICY_NAME);
  return replace(config, namespace, { ...p, spec: { ...p.spec, egress } });
}

/** Adds a rule; a namespace without a policy gets one that still allows by default (the caller warns). */
export function addRule(config: unknown, namespace: string, rule: AllowRule): { config: PolicyConfig; added: boolean } {
  const p = cliPolicy(config, namespace) ?? newPolicy(namespace, 'allow', [], CLI_POLICY_NAME);
  if (rulesOf(config, namespace).some((r) => ruleKey(r.rule) === ruleKey(rule))) return { config: { policies: policiesOf(config) }, added: false };
  return { config: replace(config, namespace, { ...p, spec: { ...p.spec, rules: [...p.spec.rules, rule] } }), added: true };
}

export interface NumberedRule {
  /** 1-based, across the namespace's policies in stored order: what `mesh policy list` shows. */
  index: number;
  policy: string;
  rule: AllowRule;
}

export function rulesOf(config: unknown, namespace: string): NumberedRule[] {
  const out: NumberedRule[] = [];
  for (const p of sortPolicies(policiesOf(config))) {
    if (p.metadata.namespace !== namespace) continue;
    for (const rule of p.spec.rules) out.push({ index: out.length + 1, policy: p.metadata.name, rule });
  }
  return out;
}

/** Removes rules by their list index, or those matching the given fields exactly. */
export function deleteRules(config: unknown, namespace: string, which: { index?: number; rule?: AllowRule }): { config: PolicyConfig; removed: NumberedRule[] } {
  const all = rulesOf(config, namespace);
  let gone: NumberedRule[];
  if (which.index !== undefined) {
    const hit = all.find((r) => r.index === which.index);
    if (!hit) {
      throw new MeshError(
        `namespace ${namespace} has no rule ${which.index}`,
        all.length ? `its rules are 1-${all.length}: 'mesh policy list -n ${namespace}' shows them` : 'it has no rules',
      );
    }
    gone = [hit];
  } else {
    const key = ruleKey(which.rule!);
    gone = all.filter((r) => ruleKey(r.rule) === key);
    if (!gone.length) {
      const similar = all.filter((r) => r.rule.from === which.rule!.from && r.rule.to === which.rule!.to);
      throw new MeshError(
        `namespace ${namespace} has no rule from ${which.rule!.from} to ${which.rule!.to}${which.rule!.port ? ` port ${which.rule!.port}` : ''}${which.rule!.pathPrefix ? ` path ${which.rule!.pathPrefix}` : ''}`,
        similar.length ? `rules ${similar.map((r) => r.index).join(', ')} have other --port/--path-prefix: delete by number, e.g. 'mesh policy delete ${similar[0]!.index} -n ${namespace}'` : `'mesh policy list -n ${namespace}' shows its rules`,
      );
    }
  }
  const drop = new Set(gone.map((g) => `${g.policy}\n${ruleKey(g.rule)}`));
  const policies = policiesOf(config).map((p) =>
    p.metadata.namespace !== namespace ? p : { ...p, spec: { ...p.spec, rules: p.spec.rules.filter((r) => !drop.has(`${p.metadata.name}\n${ruleKey(r)}`)) } },
  );
  return { config: { policies: sortPolicies(policies) }, removed: gone };
}

/** Removes every policy of the namespace: it allows all again. */
export function resetNamespace(config: unknown, namespace: string): PolicyConfig {
  return { policies: sortPolicies(policiesOf(config).filter((p) => p.metadata.namespace !== namespace)) };
}

export const LIST_HEAD = ['NAMESPACE', 'DEFAULT', 'RULE', 'FROM', 'TO', 'PORT', 'PATH'];

/** Rows for `mesh policy list`: one per rule, or one per namespace without rules. */
export function listRows(config: unknown, namespace?: string): string[][] {
  const namespaces = [...new Set(policiesOf(config).map((p) => p.metadata.namespace))].filter((n) => !namespace || n === namespace).sort();
  const rows: string[][] = [];
  for (const ns of namespaces) {
    // Egress denied (mesh policy egress deny) is said beside the default: it is the namespace's too.
    const egress = policiesOf(config).some((p) => p.metadata.namespace === ns && p.spec.egress === 'deny') ? ', egress deny' : '';
    const def = effectiveDefault(config, ns)! + egress;
    const rules = rulesOf(config, ns);
    if (!rules.length) rows.push([ns, def, '-', '-', '-', '-', '-']);
    for (const r of rules) rows.push([ns, def, String(r.index), r.rule.from, r.rule.to, r.rule.port ? String(r.rule.port) : '*', r.rule.pathPrefix ?? '*']);
  }
  return rows;
}

/** One line describing a rule, for messages. */
export function describeRule(r: AllowRule): string {
  return `from ${r.from} to ${r.to}${r.port ? ` port ${r.port}` : ''}${r.pathPrefix ? ` path ${r.pathPrefix}` : ''}`;
}
