// mesh install / mesh uninstall: the mesh's identity and control plane on the chosen platform.
import type { Command } from 'commander';
import { platform } from './context.js';
import { VERSION } from '../version.js';
import type { InstallFlags, UninstallFlags } from '../platform/index.js';

export function registerInstall(program: Command): void {
  program
    .command('install')
    .description('install the mesh: trust anchor, issuer and a running control plane')
    .option('--trust-domain <domain>', 'trust domain of the SPIFFE identities', 'cluster.local')
    .option('--control-port <port>', 'control plane port on 127.0.0.1 (default: a free port)')
    .option('--cert-lifetime <duration>', "lifetime of workload certificates and of the control plane's own", '24h')
    .option('--scrape-interval <duration>', 'how often the control plane scrapes proxy metrics for mesh stat', '10s')
    // Kubernetes-only options: the local platform refuses them.
    .option('--crds', 'kubernetes: render (or apply) the CustomResourceDefinitions; install them before the control plane')
    .option('--apply', 'kubernetes: apply to the cluster (server-side apply) and wait, instead of printing YAML')
    .option('--image <image>', `kubernetes: control plane and proxy image (default ghcr.io/mesh/mesh:${VERSION})`)
    .option('--wait <duration>', 'kubernetes: how long --apply waits for the control plane', '5m')
    .option('--identity-trust-anchors-file <file>', 'kubernetes: trust anchor bundle (PEM) instead of a generated one')
    .option('--identity-issuer-certificate-file <file>', 'kubernetes: issuer certificate (PEM), signed by the trust anchor')
    .option('--identity-issuer-key-file <file>', 'kubernetes: issuer private key (PEM)')
    .action(async (flags: InstallFlags, cmd: Command) => {
      const given = cmd.options.map((o) => o.attributeName()).filter((k) => cmd.getOptionValueSource(k) === 'cli');
      await platform(cmd).install(flags, given);
    });

  program
    .command('uninstall')
    .description('stop the control plane and every workload and sidecar mesh started')
    .option('--purge', 'also remove the state directory (identity, config, logs)')
    .option('--apply', 'kubernetes: delete from the cluster, instead of printing what to delete')
    .option('--crds', 'kubernetes: also the CRDs, and with them every Route and Policy')
    .action(async (flags: UninstallFlags, cmd: Command) => platform(cmd).uninstall(flags));
}
