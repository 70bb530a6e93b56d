// mesh identity show/rotate-issuer/rotate-anchor/reload: the mesh's certificate authority.
// The platform holds the authority and rotates it; this adapter parses and prints.
import type { Command } from 'commander';
import chalk from 'chalk';
import { checked, outputFormat, platform } from './context.js';
import { PHASES, type Phase } from '../identity/phases.js';
import type { IdentityOps } from '../platform/index.js';
import { parseDuration } from '../util/duration.js';
import { MeshError } from '../util/errors.js';
import { json, step } from '../ui/output.js';
import { meshCmd, runnable } from '../ui/invocation.js';

function lifetime(text: string | undefined): number | undefined {
  return text === undefined ? undefined : checked(() => parseDuration(text, '--lifetime'), 'e.g. --lifetime 365d');
}

function report(r: Awaited<ReturnType<IdentityOps['rotateIssuer']>>): void {
  for (const d of r.done) console.log(`${chalk.green('√')} ${d}`);
  console.log(r.reloaded ? `${chalk.green('√')} the control plane loaded it (no restart)` : runnable(`the control plane is not running: it loads the new identity when it starts ('mesh install')`));
  if (r.next) console.log(`Next: ${runnable(r.next)}`);
}

export function registerIdentity(program: Command): void {
  const identity = program.command('identity').description("the mesh's certificate authority: trust anchors, issuer, rotation");

  identity
    .command('show')
    .description('print the trust anchors, the issuer and the workload certificate lifetime')
    .option('-o, --output <format>', 'table or json')
    .action(async (f: { output?: string }, cmd: Command) => {
      const format = outputFormat(f.output);
      const info = (await platform(cmd, format === 'json').identity()).show();
      if (format === 'json') return json(info);
      const { issuer, rotation: rot } = info;
      console.log(`Trust domain: ${info.trustDomain}`);
      info.trustAnchors.forEach((a, i) => console.log(`Trust anchor ${i + 1}: ${a.subject}, valid until ${a.notAfter} (${a.fingerprint.slice(0, 23)}…)`));
      console.log(`Issuer: ${issuer.subject}, valid until ${issuer.notAfter} (${issuer.fingerprint.slice(0, 23)}…)`);
      console.log(`Workload certificates: ${info.certLifetimeMs / 1000} s, renewed at 70%`);
      if (rot) console.log(`Trust anchor rotation: phase ${rot.phase} done (next: ${meshCmd(`identity rotate-anchor --phase ${rot.phase === 'add' ? 'switch' : 'remove'}`)})`);
    });

  identity
    .command('rotate-issuer')
    .description('replace the issuer with a new one under the same trust anchor; the control plane picks it up without a restart')
    .option('--lifetime <duration>', 'lifetime of the new issuer (at most the trust anchor\'s)', '365d')
    .action(async (f: { lifetime: string }, cmd: Command) => {
      const lifetimeMs = lifetime(f.lifetime);
      const ca = await platform(cmd).identity();
      const r = await step('Rotating the issuer', () => ca.rotateIssuer({ lifetimeMs }), () => 'Rotated the issuer');
      report(r);
    });

  identity
    .command('rotate-anchor')
    .description('rotate the trust anchor in three phases (add, switch, remove), each after every proxy renewed')
    .option('--phase <phase>', `the phase to run: ${PHASES.join(', ')} (default: the next one)`)
    .option('--lifetime <duration>', 'lifetime of the new anchor (add) or issuer (switch)', '365d')
    .option('--wait <duration>', 'switch/remove: wait this long for every proxy to renew', '0s')
    .option('--force', 'switch/remove even though some proxies have not renewed (their peers may refuse them)')
    .action(async (f: { phase?: string; lifetime: string; wait: string; force?: boolean }, cmd: Command) => {
      if (f.phase !== undefined && !PHASES.includes(f.phase as Phase)) throw new MeshError(`unknown phase '${f.phase}'`, `use --phase ${PHASES.join(', --phase ')}`);
      const lifetimeMs = lifetime(f.lifetime);
      const waitMs = checked(() => parseDuration(f.wait, '--wait'), 'e.g. --wait 2m');
      const ca = await platform(cmd).identity();
      const phase = f.phase as Phase | undefined;
      const r = await step(`Trust anchor rotation${phase ? `, phase ${phase}` : ''}`, () =>
        ca.rotateAnchor(phase, { lifetimeMs, waitMs, force: f.force, progress: (m) => process.stderr.write(chalk.dim(`${m}\n`)) }));
      report(r);
    });

  identity
    .command('reload')
    .description('make the running control plane load the identity files again (after editing them by hand)')
    .action(async (_f: unknown, cmd: Command) => {
      await (await platform(cmd).identity()).reload();
      console.log('The control plane loaded the identity files');
    });
}
