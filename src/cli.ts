// The mesh command line: one binary that manages the mesh and runs its control plane and proxies.
import { Command, CommanderError } from 'commander';
import chalk from 'chalk';
import { VERSION } from './version.js';
import { formatError, MeshError } from './util/errors.js';
import { registerInstall } from './commands/install.js';
import { registerVersion } from './commands/version.js';
import { registerRun } from './commands/run.js';
import { registerRuntimes } from './commands/runtime.js';
import { registerDemo } from './commands/demo.js';

export function buildProgram(): Command {
  const program = new Command('mesh')
    .description('A service mesh in one binary: observe, control and secure the traffic between your services')
    .version(VERSION, '--client-version', 'print the client version')
    .option('--state-dir <dir>', 'state directory of the local platform (default: $MESH_HOME or ~/.mesh)')
    .option('--platform <name>', 'platform to act on: local or kubernetes')
    .option('--verbose', 'print stack traces with errors')
    .showSuggestionAfterError(true)
    .configureOutput({
      outputError: (str, write) => write(`${chalk.red(str.trimEnd())} — see 'mesh --help'\n`),
    })
    .exitOverride();
  registerInstall(program);
  registerRun(program);
  registerDemo(program);
  registerVersion(program);
  registerRuntimes(program);
  for (const c of program.commands) c.exitOverride().configureOutput(program.configureOutput());
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  const verbose = argv.includes('--verbose');
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' ? 0 : err.exitCode || 1;
      return;
    }
    process.stderr.write(`${chalk.red('error:')} ${formatError(err)}\n`);
    if (verbose && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
    else if (!(err instanceof MeshError)) process.stderr.write(chalk.dim('(run with --verbose for details)\n'));
    process.exitCode = err instanceof MeshError ? err.exitCode : 1;
  }
}
