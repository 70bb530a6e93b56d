// mesh authz: a workload's inbound requests per authorization rule (and the default), like linkerd viz authz.
import type { Command } from 'commander';
import { outputFormat, platform } from './context.js';
import { json } from '../ui/output.js';
import type { AuthzResult } from '../api/telemetry.js';

const pct = (v: number | null) => (v === null ? '-' : `${(v * 100).toFixed(2)}%`);
const num = (v: number | null, unit: string) => (v === null ? '-' : `${v < 10 ? v.toFixed(1) : Math.round(v)}${unit}`);

export function renderAuthz(r: AuthzResult): string {
  const head = ['RULE', 'CLIENTS', 'ALLOWED_RPS', 'DENIED_RPS', 'SUCCESS', 'LATENCY_P50', 'LATENCY_P95', 'LATENCY_P99'];
  // Estimated figures (proxies that do not count per rule) are marked ~.
  const cells = r.rows.map((x) => {
    const est = (v: string) => (x.latency === 'estimated' && v !== '-' ? `~${v}` : v);
    return [x.rule, x.clients.map((c) => c.replace(/^spiffe:\/\/[^/]+\//, '')).join(','), num(x.allowedRps, 'rps'), num(x.deniedRps, 'rps'),
      est(pct(x.success)), est(num(x.latency_ms_p50, 'ms')), est(num(x.latency_ms_p95, 'ms')), est(num(x.latency_ms_p99, 'ms'))];
  });
  if (!cells.length) return `no inbound requests to ${r.deployment} in the last ${r.windowMs / 1000}s`;
  const width = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  return [head, ...cells].map((c) => c.map((v, i) => v.padEnd(width[i]!)).join('  ').trimEnd()).join('\n');
}

export function registerAuthz(program: Command): void {
  program
    .command('authz')
    .description("a workload's inbound requests per authorization rule: allowed, denied, success, latency")
    .argument('<resource>', 'deploy/NAME (or NAME), e.g. deploy/reviews-v1')
    .option('-n, --namespace <namespace>', 'namespace of the workload', 'default')
    .option('-t, --time-window <duration>', 'how far back the figures look', '1m')
    .option('-o, --output <format>', 'table or json')
    .action(async (resource: string, f: { namespace: string; timeWindow: string; output?: string }, cmd: Command) => {
      const format = outputFormat(f.output, ['table', 'json']);
      const name = resource.replace(/^(deploy|deployment|deployments)\//, '');
      const reader = await platform(cmd, format === 'json').controlReader();
      const r = await reader.get<AuthzResult>(`/v1/authz?${new URLSearchParams({ namespace: f.namespace, deployment: name, window: f.timeWindow })}`);
      if (format === 'json') json(r);
      else console.log(renderAuthz(r));
    });
}
