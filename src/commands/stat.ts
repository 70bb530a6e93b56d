// mesh stat, mesh edges and mesh prometheus-config: the mesh's traffic as linkerd viz shows it,
// from the control plane's scrapes or from a Prometheus.
import type { Command } from 'commander';
import chalk from 'chalk';
import { outputFormat, checked, platform } from './context.js';
import type { ControlReader } from '../platform/index.js';
import { computeStat, parseStatQuery, statQueryParams } from '../control/telemetry/stat.js';
import { computeEdges, edgesQueryParams, parseEdgesQuery } from '../control/telemetry/edges.js';
import type { EdgesResult, StatResult } from '../api/telemetry.js';
import { PrometheusSource } from '../control/telemetry/prometheus.js';
import { parseDuration } from '../util/duration.js';
import { json } from '../ui/output.js';
import { runnable } from '../ui/invocation.js';
import { edgesJson, renderEdgesTable, renderStatTable, statJson } from '../ui/stat.js';

interface StatFlags {
  namespace: string;
  allNamespaces?: boolean;
  from?: string;
  fromNamespace?: string;
  to?: string;
  toNamespace?: string;
  timeWindow: string;
  output?: string;
  prometheus?: string;
}

/** With --prometheus no platform is involved: say which Prometheus answers instead of the banner. */
async function source(cmd: Command, prometheus: string | undefined, quiet: boolean): Promise<ControlReader | undefined> {
  if (!prometheus) return platform(cmd, quiet).controlReader();
  if (!quiet) process.stderr.write(chalk.dim(`source: Prometheus at ${prometheus}\n`));
  return undefined;
}

function printHints(hints: string[]): void {
  for (const h of hints) process.stderr.write(chalk.dim(`${runnable(h)}\n`));
}

export function registerStat(program: Command): void {
  program
    .command('stat')
    .description('success rate, requests per second, latency and connections per deployment, pod, service or namespace')
    .argument('<resource>', 'deployments (deploy), pods (po), services (svc) or namespaces (ns)')
    .argument('[name]', 'only this one')
    .option('-n, --namespace <namespace>', 'namespace of the resources', 'default')
    .option('-A, --all-namespaces', 'resources of every namespace')
    .option('--from <resource>', 'only traffic from this resource: NAME or TYPE/NAME, e.g. deploy/productpage-v1')
    .option('--from-namespace <namespace>', 'namespace of --from (default: --namespace)')
    .option('--to <resource>', 'only traffic to this resource: NAME or TYPE/NAME, e.g. svc/reviews')
    .option('--to-namespace <namespace>', 'namespace of --to (default: --namespace)')
    .option('-t, --time-window <duration>', 'how far back the figures look', '1m')
    .option('-o, --output <format>', 'table, wide or json')
    .option('--prometheus <url>', 'compute the figures with PromQL from this Prometheus (see mesh prometheus-config)')
    .action(async (resource: string, name: string | undefined, f: StatFlags, cmd: Command) => {
      const format = outputFormat(f.output, ['table', 'wide', 'json']);
      const params = new URLSearchParams({ resource, namespace: f.namespace, window: f.timeWindow });
      if (name) params.set('name', name);
      if (f.allNamespaces) params.set('all', 'true');
      for (const [k, v] of [['from', f.from], ['fromNamespace', f.fromNamespace], ['to', f.to], ['toNamespace', f.toNamespace]] as const) if (v) params.set(k, v);
      const query = parseStatQuery(params);
      const ctx = await source(cmd, f.prometheus, format === 'json');
      const result = ctx
        ? await ctx.get<StatResult>(`/v1/stat?${statQueryParams(query)}`)
        : await computeStat(new PrometheusSource(f.prometheus!), query);
      if (format === 'json') json(statJson(result.rows));
      else console.log(renderStatTable(result.rows, { allNamespaces: query.allNamespaces, wide: format === 'wide' }));
      printHints(result.hints);
    });

  program
    .command('edges')
    .description('which workloads talk to which, with the identities each side proved')
    .argument('<resource>', 'deployments (deploy) or pods (po)')
    .option('-n, --namespace <namespace>', 'edges from or to this namespace', 'default')
    .option('-A, --all-namespaces', 'edges of every namespace')
    .option('-t, --time-window <duration>', 'how far back to look for traffic', '1m')
    .option('-o, --output <format>', 'table, wide or json')
    .option('--prometheus <url>', 'find the edges with PromQL from this Prometheus')
    .action(async (resource: string, f: Omit<StatFlags, 'from' | 'to'>, cmd: Command) => {
      const format = outputFormat(f.output, ['table', 'wide', 'json']);
      const params = new URLSearchParams({ resource, namespace: f.namespace, window: f.timeWindow });
      if (f.allNamespaces) params.set('all', 'true');
      const query = parseEdgesQuery(params);
      const ctx = await source(cmd, f.prometheus, format === 'json');
      const result = ctx
        ? await ctx.get<EdgesResult>(`/v1/edges?${edgesQueryParams(query)}`)
        : await computeEdges(new PrometheusSource(f.prometheus!), query);
      if (format === 'json') json(edgesJson(result.edges));
      else console.log(renderEdgesTable(result.edges, { wide: format === 'wide' }));
      printHints(result.hints);
    });

  program
    .command('prometheus-config')
    .description("print a Prometheus config that scrapes every proxy with the labels 'mesh stat --prometheus' needs")
    .option('--scrape-interval <duration>', 'how often Prometheus scrapes', '10s')
    .option('--file-sd <path>', 'write the targets to this file_sd JSON file (re-run to refresh it) and print a config that reads it')
    .option('--trust-domain <domain>', 'Kubernetes: trust domain of the identity label (default: the installed one, or cluster.local)')
    .action(async (f: { scrapeInterval: string; fileSd?: string; trustDomain?: string }, cmd: Command) => {
      const scrapeIntervalMs = checked(() => parseDuration(f.scrapeInterval, 'scrape interval'), 'e.g. --scrape-interval 10s');
      process.stdout.write(await platform(cmd, true).prometheusConfig({ scrapeIntervalMs, fileSd: f.fileSd, trustDomain: f.trustDomain }));
    });
}

