// mesh version: the client's version and, when it answers, the control plane's.
import type { Command } from 'commander';
import { outputFormat, platform } from './context.js';
import { VERSION } from '../version.js';
import { json } from '../ui/output.js';
import { runnable } from '../ui/invocation.js';

export function registerVersion(program: Command): void {
  program
    .command('version')
    .description("print the client's and the control plane's versions")
    .option('--client', 'print the client version only')
    .option('-o, --output <format>', 'table or json')
    .action(async (flags: { client?: boolean; output?: string }, cmd: Command) => {
      const format = outputFormat(flags.output);
      const { version: server, why = '' } = flags.client ? {} : await platform(cmd, format === 'json').serverVersion();
      if (format === 'json') return json(flags.client ? { client: VERSION } : { client: VERSION, server: server ?? null });
      console.log(`Client version: ${VERSION}`);
      if (!flags.client) console.log(runnable(`Server version: ${server ?? `unavailable${why}`}`));
    });
}
