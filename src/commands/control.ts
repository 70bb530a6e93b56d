// mesh control: the control plane this binary embeds, run in the foreground (in the cluster, the mesh-control
// Deployment runs it).
import type { Command } from 'commander';
import { platform } from './context.js';
import { waitForSignal } from '../util/signals.js';
import type { ControlFlags } from '../platform/index.js';

export function registerControl(program: Command): void {
  program
    .command('control')
    .description('run the control plane in the foreground (mesh install starts it in the background)')
    .option('--port <port>', 'override the installed control-plane port')
    .option('--webhook-port <port>', 'kubernetes: port of the injector webhook (default 9443)')
    .option('--scrape-interval <duration>', 'override how often proxy metrics are scraped (mesh install --scrape-interval)')
    .action(async (f: ControlFlags, cmd: Command) => {
      // In a pod the banner would only clutter the logs.
      const control = await platform(cmd, true).runControl(f);
      await waitForSignal();
      await control.close();
    });
}
