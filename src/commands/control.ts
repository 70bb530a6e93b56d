// mesh control: the control plane this binary embeds, run in the foreground.
import type { Command } from 'commander';
import { context, checked, platformOf } from './context.js';
import { runControl } from '../control/main.js';
import { parsePort } from '../util/duration.js';
import { waitForSignal } from '../util/signals.js';
import { parseScrapeInterval } from '../control/telemetry/config.js';

export function registerControl(program: Command): void {
  program
    .command('control')
    .description('run the control plane in the foreground (mesh install starts it in the background)')
    .option('--port <port>', 'override the installed control-plane port')
    .option('--webhook-port <port>', 'kubernetes: port of the injector webhook (default 9443)')
    .option('--scrape-interval <duration>', 'override how often proxy metrics are scraped (mesh install --scrape-interval)')
    .action(async (f: { port?: string; scrapeInterval?: string }, cmd: Command) => {
      if (platformOf(cmd) === 'kubernetes') return (await import('./kube-control.js')).kubeControl(f, cmd);
      const { state } = context(cmd, true);
      const port = f.port ? checked(() => parsePort(f.port!, 'port'), 'pass --port 1-65535') : undefined;
      const scrapeIntervalMs = f.scrapeInterval ? parseScrapeInterval(f.scrapeInterval) : undefined;
      const control = await runControl(state, { port, scrapeIntervalMs });
      await waitForSignal();
      await control.close();
    });
}
