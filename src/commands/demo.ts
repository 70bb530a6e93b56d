// mesh demo: the bookinfo-style sample (productpage → details, reviews v1/v2/v3 → ratings), each app with its
// sidecar, plus the ingress and a light traffic generator, on the chosen platform.
import type { Command } from 'commander';
import { platform } from './context.js';
import type { DemoFlags } from '../platform/index.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('install if needed and run the bookinfo sample with its sidecars and an ingress')
    .option('--ingress-port <port>', 'ingress port on 127.0.0.1 (default 8080, or a free one if taken)')
    .option('--rate <rps>', 'requests per second from the traffic generator', '1')
    .option('--no-traffic', 'do not start the traffic generator')
    .option('--access-log', 'sidecars log every request as JSON lines (in their logs)')
    .option('--trace-collector <url>', 'sidecars export spans as OTLP/HTTP JSON to this URL')
    .option('--down', 'stop the sample')
    .action(async (f: DemoFlags, cmd: Command) => platform(cmd).demo(f));
}
