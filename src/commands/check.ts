// mesh check [--pre]: is the mesh healthy (or can it be installed)? Checks are data in src/check/, run by one
// runner and printed by one renderer (src/ui/check.ts); the platform picks the categories and what they look at.
import type { Command } from 'commander';
import chalk from 'chalk';
import { checked, outputFormat, platform } from './context.js';
import { categoryHeader, renderJson, resultLines, statusLine } from '../ui/check.js';
import { parseDuration, parsePort } from '../util/duration.js';
import { runnable } from '../ui/invocation.js';

interface CheckFlags {
  pre?: boolean;
  wait: string;
  output?: string;
  controlPort?: string;
}

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('check that the mesh is healthy: control plane, identity, every proxy (exit 1 when a check fails)')
    .option('--pre', 'check that a mesh can be installed here instead')
    .option('--wait <duration>', 'keep retrying checks that may still pass (a process starting) this long', '5s')
    .option('--control-port <port>', 'with --pre: the control port mesh install will be given')
    .option('-o, --output <format>', 'table or json')
    .action(async (f: CheckFlags, cmd: Command) => {
      const format = outputFormat(f.output, ['table', 'json']);
      const waitMs = checked(() => parseDuration(f.wait, '--wait'), 'e.g. --wait 60s');
      const controlPort = f.controlPort === undefined ? undefined : checked(() => parsePort(f.controlPort!, '--control-port'), 'use 1-65535');
      const stream = format === 'table';
      let first = true;
      const report = await platform(cmd, !stream).check({ pre: f.pre, controlPort }, {
        waitMs,
        onCategory: stream ? (name) => {
          process.stdout.write((first ? '' : '\n') + categoryHeader(name));
          first = false;
        } : undefined,
        onResult: stream ? (r) => process.stdout.write(runnable(resultLines(r, chalk))) : undefined,
      });
      if (format === 'json') process.stdout.write(runnable(renderJson(report)));
      else process.stdout.write('\n' + statusLine(report.success, chalk));
      if (!report.success) process.exitCode = 1;
    });
}
