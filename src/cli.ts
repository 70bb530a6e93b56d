// The mesh command line: one binary that manages the mesh and runs its control plane and proxies.
import { Command, CommanderError } from 'commander';
import chalk from 'chalk';
import { VERSION } from './version.js';
import { formatError, MeshError } from './util/errors.js';
import { meshCommand, rememberInvocation, runnable } from './ui/invocation.js';
type Register = (program: Command) => void;

// Commands load only what they use: a sidecar (mesh run) stays lean, without the CA or the UI kit.
const MODULES: { names: string[]; load: () => Promise<Register> }[] = [
  { names: ['install', 'uninstall'], load: async () => (await import('./commands/install.js')).registerInstall },
  { names: ['run', 'ingress', 'stop', 'workloads', 'ps'], load: async () => (await import('./commands/run.js')).registerRun },
  { names: ['demo'], load: async () => (await import('./commands/demo.js')).registerDemo },
  { names: ['version'], load: async () => (await import('./commands/version.js')).registerVersion },
  { names: ['control'], load: async () => (await import('./commands/control.js')).registerControl },
  { names: ['proxy'], load: async () => (await import('./commands/proxy.js')).registerProxy },
  { names: ['stat', 'edges', 'prometheus-config'], load: async () => (await import('./commands/stat.js')).registerStat },
  { names: ['inject'], load: async () => (await import('./commands/inject.js')).registerInject },
  { names: ['route'], load: async () => (await import('./commands/route.js')).registerRoute },
  { names: ['policy'], load: async () => (await import('./commands/policy.js')).registerPolicy },
  { names: ['identity'], load: async () => (await import('./commands/identity.js')).registerIdentity },
  { names: ['check'], load: async () => (await import('./commands/check.js')).registerCheck },
  { names: ['tap'], load: async () => (await import('./commands/tap.js')).registerTap },
  { names: ['top'], load: async () => (await import('./commands/top.js')).registerTop },
  { names: ['authz'], load: async () => (await import('./commands/authz.js')).registerAuthz },
  { names: ['completion'], load: async () => (await import('./commands/completion.js')).registerCompletion },
  { names: ['grafana-dashboards'], load: async () => (await import('./commands/grafana.js')).registerGrafana },
  { names: ['dashboard'], load: async () => (await import('./commands/dashboard.js')).registerDashboard },
];

/** Commands that stop or remove things: never offered as the correction of a typo. */
const NEVER_SUGGESTED = new Set(['stop', 'uninstall']);

/** Commander's error, on one line, without a suggestion that stops things, and with the help of the command at fault. */
function oneLine(str: string, cmd: Command): string {
  let msg = str.trimEnd();
  const m = /\n?\(Did you mean (?:one of )?(.+)\?\)$/.exec(msg);
  if (m) {
    const keep = m[1]!.split(', ').filter((s) => !NEVER_SUGGESTED.has(s));
    msg = msg.slice(0, m.index) + (keep.length ? ` (did you mean ${keep.join(' or ')}?)` : '');
  }
  const path: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) path.unshift(c.name());
  return `${msg} — see '${meshCommand()} ${[...path, '--help'].join(' ')}'`;
}

function configureTree(cmd: Command): void {
  cmd.exitOverride().configureOutput({ outputError: (str, write) => write(`${chalk.red(oneLine(str, cmd))}\n`) });
  for (const c of cmd.commands) configureTree(c);
}

/** The first word of the command line that is not a global option (with its value). */
function firstWord(argv: string[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--state-dir' || a === '--platform' || a === '--kubeconfig' || a === '--context') i++;
    else if (a !== '--verbose') return a;
  }
  return undefined;
}

/** The subcommand named on the command line, if it is one we know. */
function named(argv: string[]): string | undefined {
  const a = firstWord(argv);
  return a && MODULES.some((m) => m.names.includes(a)) ? a : undefined;
}

export async function buildProgram(argv: string[] = []): Promise<Command> {
  const program = new Command('mesh')
    .description('A service mesh in one binary: observe, control and secure the traffic between your services')
    .addHelpText('after', '\nmesh --version (or -V) prints the client version; mesh version also asks the control plane.')
    .option('--state-dir <dir>', 'state directory of the local platform (default: $MESH_HOME or ~/.mesh)')
    .option('--platform <name>', 'platform to act on: local or kubernetes (default: $MESH_PLATFORM or local)')
    .option('--kubeconfig <file>', 'kubernetes: kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)')
    .option('--context <name>', 'kubernetes: kubeconfig context (default: its current-context)')
    .option('--verbose', 'print stack traces with errors')
    .showSuggestionAfterError(true);
  const name = named(argv);
  // Completion describes every command, so it loads them all.
  const mods = name && name !== 'completion' ? MODULES.filter((m) => m.names.includes(name)) : MODULES;
  for (const register of await Promise.all(mods.map((m) => m.load()))) register(program);
  configureTree(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  rememberInvocation(argv);
  // Only before any command: `mesh run --version v2` names the app's version.
  const first = firstWord(argv);
  if (first === '--version' || first === '-V') return void process.stdout.write(`${VERSION}\n`);
  const program = await buildProgram(argv);
  const verbose = argv.includes('--verbose');
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' ? 0 : err.exitCode || 1;
      return;
    }
    process.stderr.write(`${chalk.red('error:')} ${runnable(formatError(err))}\n`);
    if (verbose && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
    else if (!(err instanceof MeshError)) process.stderr.write(chalk.dim('(run with --verbose for details)\n'));
    process.exitCode = err instanceof MeshError ? err.exitCode : 1;
  }
}
