// mesh policy default/allow/list/delete: who may call which service. The model and its pure edits
// live in src/model/policy*.ts; this adapter parses flags, checks first, stores second (the
// `policies` config kind), then waits until every proxy has applied the change.
import type { Command } from 'commander';
import chalk from 'chalk';
import { checked, outputFormat, platform, resourceName } from './context.js';
import { checkName } from '../model/snapshot.js';
import { policiesOf, sortPolicies, validatePolicyConfig, type PolicyConfig } from '../model/policy.js';
import {
  addRule,
  deleteRules,
  describeRule,
  effectiveDefault,
  LIST_HEAD,
  listRows,
  type NumberedRule,
  resetNamespace,
  ruleFromFlags,
  setDefault,
  setEgress,
  type RuleFlags,
} from '../model/policy-edit.js';
import { storeAndWait, waitOptions, type WaitFlags } from './config-commit.js';
import { updateConfig, type EditableConfig } from '../api/config-store.js';
import { MeshError } from '../util/errors.js';
import { json } from '../ui/output.js';
import { runnable } from '../ui/invocation.js';

const namespaceOk = (ns: string) => checked(() => checkName(ns, 'namespace'), 'use a namespace name like default or shop');

// An edit retried after a write conflict runs again: each warning is said once.
const warned = new Set<string>();
const warn = (msg: string) => {
  if (!warned.has(msg)) process.stderr.write(`${chalk.yellow('‼')} ${runnable(msg)}\n`);
  warned.add(msg);
};

/** The namespace and service a rule's client names, or undefined for '*'. */
function clientOf(from: string, namespace: string): { namespace: string; service: string } | undefined {
  if (from === '*') return undefined;
  const m = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(from);
  if (m) return { namespace: m[1]!, service: m[2]! };
  const parts = from.split('/');
  return parts.length === 2 ? { namespace: parts[0]!, service: parts[1]! } : { namespace, service: from };
}

/** Validation first: the whole next document, as the control plane will check it. */
function validated(next: PolicyConfig): PolicyConfig {
  const v = validatePolicyConfig(next);
  if (!v.value) {
    const more = v.errors.length > 1 ? ` (and ${v.errors.length - 1} more)` : '';
    throw new MeshError(`the policies would be invalid: ${v.errors[0]}${more}`, 'nothing was changed');
  }
  return v.value;
}

/**
 * Change second: edit runs on the policies as stored (again on a fresh read if someone else wrote meanwhile); its
 * validated result is stored unless unchanged, then the proxies are waited for.
 */
function commit(store: EditableConfig, edit: (config: unknown) => PolicyConfig, what: string | (() => string), w: WaitFlags, unchanged?: string): Promise<void> {
  const update = () => updateConfig(store, (config) => {
    const value = validated(edit(config));
    return JSON.stringify(sortPolicies(policiesOf(config))) === JSON.stringify(value.policies) ? undefined : value;
  });
  const said = () => (typeof what === 'string' ? what : what());
  return storeAndWait(store, update, () => ({ unchanged: unchanged ?? `${said()}: unchanged`, done: said(), stored: `${said()}:` }), w);
}

export function registerPolicy(program: Command): void {
  const policy = program
    .command('policy')
    .description('control which clients may call which services: mesh policy default deny; mesh policy allow --from web --to api');

  waitOptions(policy
    .command('default')
    .description("set a namespace's default for requests no rule allows")
    .argument('<allow|deny>', 'allow: every client; deny: only what a rule allows')
    .option('-n, --namespace <namespace>', 'namespace', 'default'))
    .action(async (def: string, f: WaitFlags & { namespace: string }, cmd: Command) => {
      if (def !== 'allow' && def !== 'deny') throw new MeshError(`unknown default '${def}'`, "use 'mesh policy default allow' or 'mesh policy default deny'");
      namespaceOk(f.namespace);
      const store = await platform(cmd).policyStore();
      await commit(store, (before) => {
        const next = setDefault(before, f.namespace, def);
        if (def === 'allow' && effectiveDefault(next, f.namespace) === 'deny') {
          throw new MeshError(`namespace ${f.namespace} has another policy that denies by default`, "remove it ('mesh policy list' shows the policies there are), or keep deny");
        }
        if (def === 'deny' && !policiesOf(before).some((p) => p.metadata.namespace === f.namespace && p.spec.rules.length)) {
          warn(`namespace ${f.namespace} has no allow rules: every request to its services will be denied (403) until 'mesh policy allow ... -n ${f.namespace}'`);
        }
        return next;
      }, `namespace ${f.namespace}: default ${def}`, f);
    });

  waitOptions(policy
    .command('egress')
    .description("whether a namespace's workloads may reach destinations outside the mesh (allow: Istio's ALLOW_ANY, the default; deny: REGISTRY_ONLY)")
    .argument('<allow|deny>', 'allow: pass through plain; deny: 403 for HTTP, the connection closed for TCP')
    .option('-n, --namespace <namespace>', 'namespace', 'default'))
    .action(async (egress: string, f: WaitFlags & { namespace: string }, cmd: Command) => {
      if (egress !== 'allow' && egress !== 'deny') throw new MeshError(`unknown egress setting '${egress}'`, "use 'mesh policy egress allow' or 'mesh policy egress deny'");
      namespaceOk(f.namespace);
      const store = await platform(cmd).policyStore();
      await commit(store, (before) => setEgress(before, f.namespace, egress), `namespace ${f.namespace}: egress ${egress}`, f);
    });

  waitOptions(policy
    .command('allow')
    .description('allow requests from a client to a service (optionally only a port and a path prefix)')
    .option('--from <client>', "the client: a service (web), <namespace>/<service>, a SPIFFE identity, or '*' for any mesh identity")
    .option('--to <service>', "the destination service in the namespace, or '*' for all of them")
    .option('--port <port>', 'only this destination port (the app port)')
    .option('--path-prefix <path>', 'only paths under this prefix (segment-wise: /api matches /api/x, not /apix)')
    .option('-n, --namespace <namespace>', "the destination's namespace", 'default'))
    .action(async (f: WaitFlags & RuleFlags & { namespace: string }, cmd: Command) => {
      namespaceOk(f.namespace);
      if (f.to !== undefined) f.to = resourceName(f.to, 'service');
      const rule = ruleFromFlags(f);
      const store = await platform(cmd).policyStore();
      const endpoints = await store.endpoints();
      if (rule.to !== '*' && !endpoints.some((e) => e.namespace === f.namespace && e.service === rule.to)) {
        warn(`service ${rule.to} has no live endpoint in namespace ${f.namespace} (yet); the rule applies once it runs`);
      }
      const client = clientOf(rule.from, f.namespace);
      if (client && !endpoints.some((e) => e.namespace === client.namespace && e.service === client.service)) {
        warn(`client ${rule.from} matches no workload that runs (no service ${client.service} in namespace ${client.namespace}); the rule applies once one does: 'mesh workloads' lists what runs`);
      }
      await commit(store, (before) => {
        const { config, added } = addRule(before, f.namespace, rule);
        if (added && effectiveDefault(config, f.namespace) === 'allow') {
          warn(`namespace ${f.namespace} allows every client by default, so this rule changes nothing until 'mesh policy default deny -n ${f.namespace}'`);
        }
        return config;
      }, `namespace ${f.namespace}: allowed ${describeRule(rule)}`, f, `namespace ${f.namespace} already allows ${describeRule(rule)}: unchanged`);
    });

  policy
    .command('list')
    .description('list the policies: each namespace default and its allow rules')
    .option('-n, --namespace <namespace>', 'only this namespace (default: all)')
    .option('-o, --output <format>', 'table or json')
    .action(async (f: { namespace?: string; output?: string }, cmd: Command) => {
      const format = outputFormat(f.output);
      if (f.namespace !== undefined) namespaceOk(f.namespace);
      const stored = await (await platform(cmd, format === 'json').policyStore()).get();
      const policies = policiesOf(stored.value).filter((p) => !f.namespace || p.metadata.namespace === f.namespace);
      if (format === 'json') return json({ policies });
      if (!policies.length) {
        console.log(`No policies${f.namespace ? ` in namespace ${f.namespace}` : ''}: every client may call every service.`);
        return;
      }
      const { table } = await import('../ui/table.js');
      console.log(table(LIST_HEAD, listRows(stored.value, f.namespace)));
    });

  waitOptions(policy
    .command('delete')
    .description('delete allow rules: by number (as mesh policy list shows it), by --from/--to, or --all of a namespace')
    .argument('[rule]', 'the rule number in its namespace')
    .option('--from <client>', 'the rule\'s client')
    .option('--to <service>', "the rule's service")
    .option('--port <port>', "the rule's port")
    .option('--path-prefix <path>', "the rule's path prefix")
    .option('--all', "remove the namespace's policies altogether: it allows every client again")
    .option('-n, --namespace <namespace>', 'namespace', 'default'))
    .action(async (index: string | undefined, f: WaitFlags & RuleFlags & { all?: boolean; namespace: string }, cmd: Command) => {
      namespaceOk(f.namespace);
      const byFields = f.from !== undefined || f.to !== undefined || f.port !== undefined || f.pathPrefix !== undefined;
      if ([index !== undefined, byFields, !!f.all].filter(Boolean).length !== 1) {
        throw new MeshError('say which rules to delete', `give a rule number, --from and --to, or --all: e.g. 'mesh policy delete 2 -n ${f.namespace}'`);
      }
      let n: number | undefined;
      if (index !== undefined) {
        n = Number(index);
        if (!/^\d+$/.test(index) || n < 1) throw new MeshError(`'${index}' is not a rule number`, `'mesh policy list -n ${f.namespace}' numbers the rules from 1`);
      }
      const rule = byFields ? ruleFromFlags(f) : undefined;
      const store = await platform(cmd).policyStore();
      if (f.all) {
        return commit(store, (before) => resetNamespace(before, f.namespace), `namespace ${f.namespace}: policies removed, every client allowed`, f,
          `namespace ${f.namespace} has no policy: unchanged`);
      }
      // The rules removed are those of the attempt that was stored (a retry may number them differently).
      let removed: NumberedRule[] = [];
      const done = () => `namespace ${f.namespace}: deleted ${removed.map((r) => `rule ${r.index} (${describeRule(r.rule)})`).join(', ')}`;
      await commit(store, (before) => {
        const r = deleteRules(before, f.namespace, { index: n, rule });
        removed = r.removed;
        return r.config;
      }, done, f);
    });
}
