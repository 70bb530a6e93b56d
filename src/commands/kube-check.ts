// mesh check --platform kubernetes [--pre]: the Kubernetes checks (src/check/kube.ts) through the same runner
// and renderer as the local ones.
import type { Command } from 'commander';
import chalk from 'chalk';
import { kubeBanner, type GlobalOptions } from './context.js';
import { runChecks } from '../check/runner.js';
import { categoryHeader, renderJson, resultLines, statusLine } from '../ui/check.js';

export async function kubeCheck(f: { pre?: boolean }, cmd: Command, o: { waitMs: number; format: string }): Promise<void> {
  const { KUBE_CATEGORIES, KUBE_PRE_CATEGORIES } = await import('../check/kube.js');
  const { kubeCheckView } = await import('../platform/kubernetes/check-view.js');
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const stream = o.format === 'table';
  const view = kubeCheckView({ kubeconfig: g.kubeconfig, context: g.context }, (kube) => {
    if (stream) kubeBanner(kube.contextName);
  });
  let first = true;
  const report = await runChecks(f.pre ? KUBE_PRE_CATEGORIES : KUBE_CATEGORIES, view, {
    waitMs: o.waitMs,
    onCategory: stream ? (name) => {
      process.stdout.write((first ? '' : '\n') + categoryHeader(name));
      first = false;
    } : undefined,
    onResult: stream ? (r) => process.stdout.write(resultLines(r, chalk)) : undefined,
  });
  if (o.format === 'json') process.stdout.write(renderJson(report));
  else process.stdout.write('\n' + statusLine(report.success, chalk));
  if (!report.success) process.exitCode = 1;
}
