// mesh version: the client's version and, when it answers, the control plane's.
import type { Command } from 'commander';
import { context, outputFormat, platformOf } from './context.js';
import { controlReaderFor } from './control-api.js';
import { controlVersion } from '../platform/local/control.js';
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
      let server: string | undefined;
      let why = '';
      if (!flags.client && platformOf(cmd) === 'kubernetes') {
        // Through the API server's service proxy to mesh-control, as stat goes.
        server = await controlReaderFor(cmd, format === 'json').then((reader) => reader.get<{ version: string }>('/v1/version')).then((v) => v.version, (err: Error) => {
          why = ` (${err.message})`;
          return undefined;
        });
      } else if (!flags.client) {
        const { state } = context(cmd, format === 'json');
        server = state.isInstalled() ? await controlVersion(state).catch(() => undefined) : undefined;
        // Say why there is none, and what brings it.
        if (server === undefined) why = state.isInstalled() ? " (the control plane does not answer: 'mesh install' starts it)" : ` (no mesh is installed in ${state.display}: 'mesh install')`;
      }
      if (format === 'json') return json(flags.client ? { client: VERSION } : { client: VERSION, server: server ?? null });
      console.log(`Client version: ${VERSION}`);
      if (!flags.client) console.log(runnable(`Server version: ${server ?? `unavailable${why}`}`));
    });
}
