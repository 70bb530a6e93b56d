// mesh route set/get/list/clear/apply: how a service's requests are split over its versions.
// Parsing, validation and rendering live in src/model/route*.ts; this adapter loads, checks first,
// stores second, then waits until every proxy has applied the change.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import chalk from 'chalk';
import { checked, outputFormat, platform, resourceName } from './context.js';
import { checkName } from '../model/snapshot.js';
import { findRoute, routesOf, sortRoutes, validateRoute, withRoute, type KnownServices, type Route, type RouteConfig } from '../model/route.js';
import { parseRouteDocuments, ruleFromCli, setRule, type RuleFlags } from '../model/route-parse.js';
import { storeAndWait, waitOptions, type WaitFlags } from './config-commit.js';
import { updateConfig, type EditableConfig } from '../api/config-store.js';
import type { EndpointRecord } from '../api/types.js';
import { MeshError } from '../util/errors.js';
import { runnable } from '../ui/invocation.js';

const collect = (v: string, prev: string[]) => [...prev, v];

function names(service: string | undefined, namespace: string): void {
  checked(() => {
    if (service !== undefined) checkName(service, 'service name');
    checkName(namespace, 'namespace');
  }, "'mesh workloads' lists the services that run");
}

/** Live versions per namespace/service; the ingress serves no service. */
export function knownServices(endpoints: EndpointRecord[]): KnownServices {
  const known: KnownServices = new Map();
  for (const ep of endpoints) {
    if (ep.role === 'ingress' || ep.port === 0) continue;
    const key = `${ep.namespace}/${ep.service}`;
    const list = known.get(key) ?? [];
    if (!list.includes(ep.version)) list.push(ep.version);
    known.set(key, list.sort());
  }
  return known;
}

const known = async (store: EditableConfig): Promise<KnownServices> => knownServices(await store.endpoints());

// An edit retried after a write conflict validates again: each warning is said once.
const warned = new Set<string>();

/** Validation first: the route as stored, or a one-line error; warnings go to stderr. */
function warnOnce(w: string): void {
  if (!warned.has(w)) process.stderr.write(`${chalk.yellow('‼')} ${runnable(w)}\n`);
  warned.add(w);
}

function validated(route: unknown, known: KnownServices, what: string): Route {
  const v = validateRoute(route, known);
  if (!v.value) {
    const more = v.errors.length > 1 ? ` (and ${v.errors.length - 1} more: ${v.errors.slice(1).join('; ')})` : '';
    const hint = /no live endpoint/.test(v.errors[0]!) ? "check the name and -n; 'mesh workloads' lists what runs" : 'nothing was changed';
    throw new MeshError(`${what}: ${v.errors[0]}${more}`, hint);
  }
  for (const w of v.warnings) warnOnce(w);
  return v.value;
}

/**
 * Change second: edit runs on the routes as stored (again on a fresh read if someone else wrote meanwhile); its
 * result is stored unless unchanged, then the proxies are waited for.
 */
function commit(store: EditableConfig, edit: (config: unknown) => RouteConfig, what: string, verb: string, w: WaitFlags): Promise<void> {
  const update = () => updateConfig(store, (config) => {
    const next = edit(config);
    return JSON.stringify(sortRoutes(routesOf(config))) === JSON.stringify(next.routes) ? undefined : next;
  });
  return storeAndWait(store, update, { unchanged: `${what} unchanged`, done: `${what} ${verb}`, stored: what }, w);
}

export function registerRoute(program: Command): void {
  const route = program
    .command('route')
    .description("control how a service's requests are split over its versions: mesh route set reviews v1=80 v2=20");

  waitOptions(route
    .command('set')
    .description('set the default rule (a split by version), or with --match a rule tried before it')
    .argument('<service>', 'the service to route')
    .argument('<versions...>', 'versions with weights (v1=80 v2=20) or one version (v2)')
    .option('-n, --namespace <namespace>', 'namespace of the service', 'default')
    .option('--match <spec>', 'apply to requests matching header:NAME=VALUE, header:NAME~REGEX, path:/PREFIX, method:GET (comma: all of them; repeat: any)', collect, [])
    .option('--timeout <duration>', "per-try timeout, e.g. 500ms (504; gRPC: DEADLINE_EXCEEDED); a gRPC client's shorter grpc-timeout wins")
    .option('--retries <n>', 'retry failed requests up to n times (1-10), within the retry budget')
    .option('--retry-on <conditions>', 'what to retry (comma-separated): connect-failure, 5xx (idempotent requests; default both), and gRPC statuses cancelled, deadline-exceeded, internal, resource-exhausted, unavailable (any call answered trailers-only)')
    .option('--fault-delay <spec>', 'inject a delay: DURATION@PERCENT, e.g. 2s@10%')
    .option('--fault-abort <spec>', 'inject an error: STATUS@PERCENT, e.g. 503@5%')
    .option('--fault-abort-grpc <spec>', 'inject a gRPC error: CODE@PERCENT, e.g. 14@5% or unavailable@5% (trailers-only to gRPC callers)'))
    .action(async (service: string, versions: string[], f: RuleFlags & WaitFlags & { namespace: string }, cmd: Command) => {
      service = resourceName(service, 'service');
      names(service, f.namespace);
      const rule = ruleFromCli(versions, f);
      const { formatSplit, formatMatches } = await import('../model/route-render.js');
      const split = formatSplit(rule.backends);
      // Weights are relative, as Linkerd takes them (Istio refuses a sum other than 100): say what they come to.
      const sum = rule.backends.reduce((s, b) => s + b.weight, 0);
      if (rule.backends.length > 1 && versions.some((v) => v.includes('=')) && sum !== 100) {
        warnOnce(`the weights sum to ${sum}, not 100: they are relative, so ${service} gets ${split}`);
      }
      const store = await platform(cmd).routeStore();
      const live = await known(store);
      await commit(store, (config) => {
        const next = validated(setRule(findRoute(config, f.namespace, service), f.namespace, service, rule), live, `route ${service}`);
        return withRoute(config, f.namespace, service, next);
      }, `route ${service}`, `applied (${rule.matches ? `${formatMatches(rule)}: ` : ''}${split})`, f);
    });

  route
    .command('get')
    .description("print a service's route: its rules in the order they are tried")
    .argument('<service>', 'the service')
    .option('-n, --namespace <namespace>', 'namespace of the service', 'default')
    .option('-o, --output <format>', 'table, json or yaml')
    .action(async (service: string, f: { namespace: string; output?: string }, cmd: Command) => {
      const format = outputFormat(f.output, ['table', 'json', 'yaml']);
      service = resourceName(service, 'service');
      names(service, f.namespace);
      const store = await platform(cmd, format !== 'table').routeStore();
      const [cfg, endpoints] = await Promise.all([store.get(), store.endpoints()]);
      const r = findRoute(cfg.value, f.namespace, service);
      if (!r) {
        const live = knownServices(endpoints).get(`${f.namespace}/${service}`);
        throw new MeshError(
          `service ${service} has no route in namespace ${f.namespace}`,
          live ? `its requests spread evenly over ${live.join(', ')}; set one with 'mesh route set ${service} ${live.map((v) => `${v}=N`).join(' ')}'` : "'mesh route list' shows the routes there are",
        );
      }
      const render = await import('../model/route-render.js');
      if (format === 'json') return void process.stdout.write(render.routesJson(r));
      if (format === 'yaml') return void process.stdout.write(render.routesYaml([r]));
      const { table } = await import('../ui/table.js');
      console.log(table(render.ROUTE_HEAD, render.routeRows(r)));
      for (const n of render.routeNotes(r)) console.log(n);
    });

  route
    .command('list')
    .description('list the routes of a namespace (or all with -A)')
    .option('-n, --namespace <namespace>', 'namespace', 'default')
    .option('-A, --all-namespaces', 'routes of every namespace')
    .option('-o, --output <format>', 'table, json or yaml')
    .action(async (f: { namespace: string; allNamespaces?: boolean; output?: string }, cmd: Command) => {
      const format = outputFormat(f.output, ['table', 'json', 'yaml']);
      names(undefined, f.namespace);
      const cfg = await (await platform(cmd, format !== 'table').routeStore()).get();
      const routes = routesOf(cfg.value).filter((r) => f.allNamespaces || r.metadata.namespace === f.namespace);
      const render = await import('../model/route-render.js');
      if (format === 'json') return void process.stdout.write(render.routesJson(routes));
      if (format === 'yaml') return void process.stdout.write(render.routesYaml(routes));
      if (!routes.length) {
        console.log(`No routes${f.allNamespaces ? '' : ` in namespace ${f.namespace}`}: requests spread evenly over each service's live versions.`);
        return;
      }
      const { table } = await import('../ui/table.js');
      console.log(table(f.allNamespaces ? ['NAMESPACE', ...render.LIST_HEAD] : render.LIST_HEAD, render.listRows(routes, !!f.allNamespaces)));
    });

  waitOptions(route
    .command('clear')
    .description("remove a service's route: requests spread evenly over all its live versions again")
    .argument('<service>', 'the service')
    .option('-n, --namespace <namespace>', 'namespace of the service', 'default'))
    .action(async (service: string, f: WaitFlags & { namespace: string }, cmd: Command) => {
      service = resourceName(service, 'service');
      names(service, f.namespace);
      const store = await platform(cmd).routeStore();
      if (!findRoute((await store.get()).value, f.namespace, service)) {
        console.log(`service ${service} has no route: its requests spread evenly over all live versions`);
        return;
      }
      await commit(store, (config) => withRoute(config, f.namespace, service, undefined), `route ${service}`, 'cleared', f);
    });

  waitOptions(route
    .command('apply')
    .description('create or replace routes from YAML or JSON (as mesh route get -o yaml prints them)')
    .requiredOption('-f, --filename <file>', "file with Route documents, or '-' for stdin")
    .option('-n, --namespace <namespace>', 'namespace for routes that name none (default: default)'))
    .action(async (f: WaitFlags & { filename: string; namespace?: string }, cmd: Command) => {
      if (f.namespace !== undefined) names(undefined, f.namespace);
      let text: string;
      try {
        text = readFileSync(f.filename === '-' ? 0 : f.filename, 'utf8');
      } catch (err) {
        throw new MeshError(`cannot read ${f.filename}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'pass a YAML file with -f, or - for stdin');
      }
      const docs = parseRouteDocuments(text, f.filename === '-' ? 'stdin' : f.filename);
      const store = await platform(cmd).routeStore();
      const live = await known(store);
      const routes: Route[] = [];
      const seen = new Set<string>();
      docs.forEach((doc, i) => {
        const md = (doc as { metadata?: { namespace?: unknown; name?: unknown } } | null)?.metadata;
        if (md && typeof md === 'object' && md.namespace === undefined) md.namespace = f.namespace ?? 'default';
        else if (md && f.namespace !== undefined && md.namespace !== f.namespace) {
          throw new MeshError(`document ${i + 1} is in namespace ${String(md.namespace)}, not ${f.namespace}`, 'drop -n, or fix metadata.namespace');
        }
        const what = `document ${i + 1}${typeof md?.name === 'string' ? ` (route ${md.name})` : ''}`;
        const r = validated(doc, live, what);
        const key = `${r.metadata.namespace}/${r.metadata.name}`;
        if (seen.has(key)) throw new MeshError(`${what} is a second route for ${key}`, 'a service has one route: merge their rules');
        seen.add(key);
        routes.push(r);
      });
      const what = docs.length === 1 ? `route ${[...seen][0]!.split('/')[1]}` : `${docs.length} routes`;
      await commit(store, (current) => routes.reduce<RouteConfig>((config, r) => withRoute(config, r.metadata.namespace, r.metadata.name, r), { routes: routesOf(current) }), what, 'applied', f);
    });
}
