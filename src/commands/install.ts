// mesh install / mesh uninstall on the local platform.
import type { Command } from 'commander';
import chalk from 'chalk';
import { existsSync } from 'node:fs';
import { checked, context, platformOf } from './context.js';
import { addKubeInstallOptions, addKubeUninstallOptions, kubeInstall, kubeUninstall, refuseKubeFlags } from './kube-install.js';
import { initState } from '../platform/local/install.js';
import { controlVersion, startControl, stopControl } from '../platform/local/control.js';
import { stopWorkloads } from '../platform/local/workloads.js';
import { removeInstall, removeState, type StateDir } from '../platform/local/state.js';
import { parseDuration, parsePort } from '../util/duration.js';
import { step } from '../ui/output.js';
import { MeshError } from '../util/errors.js';
import { meshCmd, runnable } from '../ui/invocation.js';
import { parseScrapeInterval } from '../control/telemetry/config.js';

export interface InstallFlags {
  trustDomain: string;
  controlPort?: string;
  certLifetime?: string;
  scrapeInterval?: string;
}

/** Installs, or brings an installed mesh's control plane back; changes nothing when all is up. */
export async function ensureInstalled(state: StateDir, f: InstallFlags): Promise<'installed' | 'started' | 'unchanged'> {
  const controlPort = f.controlPort ? checked(() => parsePort(f.controlPort!, 'control port'), 'pass --control-port 1-65535') : undefined;
  const certLifetimeMs = f.certLifetime ? checked(() => parseDuration(f.certLifetime!, 'certificate lifetime'), 'e.g. --cert-lifetime 24h') : undefined;
  const scrapeIntervalMs = f.scrapeInterval ? parseScrapeInterval(f.scrapeInterval) : undefined;
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(f.trustDomain)) {
    throw new MeshError(`trust domain '${f.trustDomain}' is not valid`, 'use lower-case letters, digits, dots and dashes, e.g. cluster.local');
  }
  const tightened = state.secure();
  if (tightened) process.stderr.write(`${chalk.yellow('‼')} ${tightened}\n`);
  if (state.isInstalled()) {
    const cfg = state.config();
    if ((await controlVersion(state)) !== undefined) {
      console.log(`mesh is already installed in ${state.display} (control plane on https://127.0.0.1:${cfg.controlPort}); nothing changed`);
      return 'unchanged';
    }
    await step('Starting the control plane', () => startControl(state), (p) => `Control plane was not running: started on https://127.0.0.1:${p}`);
    return 'started';
  }
  const createdRoot = !existsSync(state.root);
  try {
    await step('Generating the trust anchor and issuer', () => initState(state, { trustDomain: f.trustDomain, controlPort, certLifetimeMs, scrapeIntervalMs }),
      (c) => `Generated the trust anchor and issuer (trust domain ${c.trustDomain})`);
    await step('Starting the control plane', () => startControl(state), (p) => `Control plane listening on https://127.0.0.1:${p}`);
  } catch (err) {
    // A failed install leaves nothing behind.
    removeInstall(state, createdRoot);
    throw err;
  }
  return 'installed';
}

export function registerInstall(program: Command): void {
  program
    .command('install')
    .description('install the mesh: trust anchor, issuer and a running control plane')
    .option('--trust-domain <domain>', 'trust domain of the SPIFFE identities', 'cluster.local')
    .option('--control-port <port>', 'control plane port on 127.0.0.1 (default: a free port)')
    .option('--cert-lifetime <duration>', "lifetime of workload certificates and of the control plane's own", '24h')
    .option('--scrape-interval <duration>', 'how often the control plane scrapes proxy metrics for mesh stat', '10s')
    .action(async (flags: InstallFlags, cmd: Command) => {
      if (platformOf(cmd) === 'kubernetes') return kubeInstall(flags, cmd);
      refuseKubeFlags(flags);
      const { state } = context(cmd);
      // Settings are chosen at the first install: say so rather than ignore them without a word.
      const given = ['trustDomain', 'controlPort', 'certLifetime', 'scrapeInterval'].filter((k) => cmd.getOptionValueSource(k) === 'cli');
      if (state.isInstalled() && given.length) {
        const names = given.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ');
        process.stderr.write(`${chalk.yellow('‼')} ${runnable(`${names} ignored: the mesh in ${state.display} is installed already ('mesh uninstall --purge' first to install it anew)`)}\n`);
      }
      const r = await ensureInstalled(state, flags);
      if (r === 'installed') {
        console.log(`\nmesh is installed. Next: ${chalk.bold(meshCmd('demo'))} for the sample app, or ${chalk.bold(meshCmd('run --name web --port 8080 -- <command>'))}`);
      }
    });

  program
    .command('uninstall')
    .description('stop the control plane and every workload and sidecar mesh started')
    .option('--purge', 'also remove the state directory (identity, config, logs)')
    .action(async (flags: { purge?: boolean; apply?: boolean; crds?: boolean }, cmd: Command) => {
      if (platformOf(cmd) === 'kubernetes') return kubeUninstall(flags, cmd);
      refuseKubeFlags(flags);
      const { state } = context(cmd);
      if (!state.isInstalled() && !state.control() && state.workloads().length === 0) {
        throw new MeshError(`mesh is not installed in ${state.display}`, 'nothing to uninstall');
      }
      const stopped = await step('Stopping workloads', () => stopWorkloads(state), (r) => `Stopped ${r.length} workload${r.length === 1 ? '' : 's'} and their sidecars`);
      void stopped;
      await step('Stopping the control plane', () => stopControl(state), (was) => was ? 'Stopped the control plane' : 'Control plane was not running');
      if (flags.purge) {
        await step('Removing the state', async () => removeState(state), () => `Removed ${state.display}`);
      } else {
        console.log(runnable(`State kept in ${state.display} (identity, logs); 'mesh uninstall --purge' removes it`));
      }
    });
  // Kubernetes-only options (mesh install --platform kubernetes ...): see kube-install.ts.
  addKubeInstallOptions(program.commands.find((c) => c.name() === 'install')!);
  addKubeUninstallOptions(program.commands.find((c) => c.name() === 'uninstall')!);
}
