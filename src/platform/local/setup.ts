// mesh install / mesh uninstall on the local platform: a state directory with the identity, and the control
// plane as a background process.
import chalk from 'chalk';
import { existsSync } from 'node:fs';
import { initState } from './install.js';
import { controlVersion, startControl, stopControl } from './control.js';
import { stopWorkloads } from './workloads.js';
import { removeInstall, removeState, type StateDir } from './state.js';
import { parseDuration, parsePort } from '../../util/duration.js';
import { checked, MeshError } from '../../util/errors.js';
import { step } from '../../ui/output.js';
import { meshCmd, runnable } from '../../ui/invocation.js';
import { parseScrapeInterval } from '../../control/telemetry/config.js';
import type { InstallFlags, UninstallFlags } from '../index.js';

const KUBE_ONLY: (keyof InstallFlags)[] = ['crds', 'apply', 'image', 'identityTrustAnchorsFile', 'identityIssuerCertificateFile', 'identityIssuerKeyFile'];

/** A Kubernetes option given here is a mistake worth one line. */
function refuseKubeFlags(flags: object): void {
  const f = flags as Record<string, unknown>;
  const used = KUBE_ONLY.find((k) => f[k] !== undefined);
  if (used) {
    const flag = '--' + used.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
    throw new MeshError(`${flag} is for the kubernetes platform`, `add --platform kubernetes (or set MESH_PLATFORM=kubernetes)`);
  }
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

/** `given`: the install options named on the command line (settings are chosen at the first install). */
export async function install(state: () => StateDir, f: InstallFlags, given: string[]): Promise<void> {
  refuseKubeFlags(f);
  const s = state();
  // Settings are chosen at the first install: say so rather than ignore them without a word.
  const settings = given.filter((k) => ['trustDomain', 'controlPort', 'certLifetime', 'scrapeInterval'].includes(k));
  if (s.isInstalled() && settings.length) {
    const names = settings.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ');
    process.stderr.write(`${chalk.yellow('‼')} ${runnable(`${names} ignored: the mesh in ${s.display} is installed already ('mesh uninstall --purge' first to install it anew)`)}\n`);
  }
  const r = await ensureInstalled(s, f);
  if (r === 'installed') {
    console.log(`\nmesh is installed. Next: ${chalk.bold(meshCmd('demo'))} for the sample app, or ${chalk.bold(meshCmd('run --name web --port 8080 -- <command>'))}`);
  }
}

export async function uninstall(state: () => StateDir, flags: UninstallFlags): Promise<void> {
  refuseKubeFlags(flags);
  const s = state();
  if (!s.isInstalled() && !s.control() && s.workloads().length === 0) {
    throw new MeshError(`mesh is not installed in ${s.display}`, 'nothing to uninstall');
  }
  await step('Stopping workloads', () => stopWorkloads(s), (r) => `Stopped ${r.length} workload${r.length === 1 ? '' : 's'} and their sidecars`);
  await step('Stopping the control plane', () => stopControl(s), (was) => was ? 'Stopped the control plane' : 'Control plane was not running');
  if (flags.purge) {
    await step('Removing the state', async () => removeState(s), () => `Removed ${s.display}`);
  } else {
    console.log(runnable(`State kept in ${s.display} (identity, logs); 'mesh uninstall --purge' removes it`));
  }
}
