// mesh dashboard: serves the web UI on 127.0.0.1 and prints its one-time URL; the UI reads the control plane's API.
import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { platform } from './context.js';
import { createDashboardServer } from '../dashboard/server.js';
import { parsePort } from '../util/duration.js';
import { MeshError } from '../util/errors.js';
import { waitForSignal } from '../util/signals.js';

export function registerDashboard(program: Command): void {
  program
    .command('dashboard')
    .description('the web dashboard: overview, topology, workloads, routes, policy, identity (read-only, behind a one-time URL)')
    .option('--port <port>', 'local port to serve it on (0: any free port)', '50750')
    .option('--show', 'open it in a browser')
    .option('--prometheus <url>', 'compute the figures with PromQL from this Prometheus (see mesh prometheus-config)')
    .action(async (f: { port: string; show?: boolean; prometheus?: string }, cmd: Command) => {
      const p = platform(cmd);
      const port = parsePort(f.port, '--port', true);
      if (f.prometheus !== undefined && !/^https?:\/\/[^/\s]+/.test(f.prometheus)) throw new MeshError(`--prometheus '${f.prometheus}' is not an http(s) URL`, 'e.g. --prometheus http://127.0.0.1:9090');
      let backend = await p.dashboardBackend();
      if (f.prometheus) backend = (await import('../dashboard/prometheus.js')).withPrometheus(backend, f.prometheus);
      const { server, token } = createDashboardServer(backend);
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? new MeshError(`port 127.0.0.1:${port} is in use`, 'pass --port 0 or another port') : err));
        server.listen(port, '127.0.0.1', resolve);
      });
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/?token=${token}`;
      console.log(`mesh dashboard: ${url}${f.prometheus ? ` (figures from Prometheus at ${f.prometheus})` : ''}`);
      if (f.show) spawn(process.platform === 'darwin' ? 'open' : 'xdg-open', [url], { stdio: 'ignore', detached: true }).on('error', () => {}).unref();
      await waitForSignal();
      server.closeAllConnections();
      server.close();
      backend.close();
    });
}
