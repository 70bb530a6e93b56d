// mesh proxy: the sidecar this binary embeds, for an app started separately (locally), or in an injected pod.
import type { Command } from 'commander';
import { platform } from './context.js';
import { waitForSignal } from '../util/signals.js';
import type { ProxyFlags } from '../platform/index.js';

export function registerProxy(program: Command): void {
  program
    .command('proxy')
    .description('run a sidecar proxy for an app started separately')
    .option('--name <service>', 'service of the app (Kubernetes: the pod\'s ServiceAccount)')
    .option('--version <version>', 'version of the service', 'v1')
    .option('-n, --namespace <namespace>', 'namespace', 'default')
    .option('--app-port <port>', 'port the app listens on (127.0.0.1)')
    .option('--instance <name>', 'instance name (Kubernetes: the pod name)')
    .option('--inbound-port <port>', 'mTLS inbound listener port', '0')
    .option('--outbound-port <port>', 'outbound listener port', '0')
    .option('--admin-port <port>', 'admin listener port', '0')
    .option('--trust-anchors <file>', 'trust anchor bundle (default: from the state dir)')
    .action(async (f: ProxyFlags, cmd: Command) => {
      const proxy = await platform(cmd, true).runProxy(f);
      await waitForSignal();
      await proxy.close();
    });
}
