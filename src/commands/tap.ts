// mesh tap: live requests of a resource's proxies, as linkerd viz tap prints them; the control plane
// fans the tap out to the proxies and this command polls it.
import type { Command } from 'commander';
import { outputFormat, platform } from './context.js';
import { parseDuration } from '../util/duration.js';
import { MeshError } from '../util/errors.js';
import { parseTapTarget } from '../control/tap.js';
import type { TapPoll } from '../api/tap.js';

export interface TapFlags {
  namespace: string;
  to?: string;
  toNamespace?: string;
  path?: string;
  method?: string;
  authority?: string;
  maxRps: string;
  output?: string;
  count?: string;
  duration?: string;
}

export type TapLine = TapPoll['events'][number];

/** Opens a tap and calls onEvent for each request until stop() resolves true or the duration ends. */
export async function runTap(cmd: Command, target: string, f: TapFlags, headers: boolean, onEvent: (e: TapLine) => boolean | void, quiet = false): Promise<void> {
  for (const [text, ns] of [[target, f.namespace], [f.to, f.toNamespace ?? f.namespace]] as const) {
    try {
      if (text !== undefined) parseTapTarget(text, ns);
    } catch (err) {
      throw new MeshError((err as Error).message, 'see mesh tap --help');
    }
  }
  const p = platform(cmd, quiet);
  const maxRps = Number(f.maxRps);
  if (!Number.isInteger(maxRps) || maxRps < 1 || maxRps > 1000) throw new MeshError(`--max-rps must be a whole number from 1 to 1000, not '${f.maxRps}'`, 'e.g. --max-rps 100');
  const params = new URLSearchParams({ target, namespace: f.namespace, maxRps: String(maxRps), headers: String(headers) });
  for (const [k, v] of [['to', f.to], ['toNamespace', f.toNamespace], ['path', f.path], ['method', f.method], ['authority', f.authority]] as const) if (v) params.set(k, v);
  const until = f.duration ? Date.now() + parseDuration(f.duration, '--duration') : Infinity;
  const tap = await p.openTap(params);
  if (tap.first.proxies === 0) process.stderr.write(`no proxy of ${target} in namespace ${f.namespace} runs now; waiting for one\n`);
  let stopped = false;
  const stop = () => {
    stopped = true;
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let after = 0;
  try {
    while (!stopped && Date.now() < until) {
      const wait = Math.max(0, Math.min(2000, until - Date.now()));
      const r = await tap.poll(after, wait);
      after = r.next;
      for (const e of r.events) if (onEvent(e) === true) stopped = true;
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await tap.close();
  }
}

const short = (id: string) => id.replace(/^spiffe:\/\/[^/]+\//, '');

/** linkerd viz tap's lines: a req and a rsp line per request (the proxy reports a request once it ends). */
export function tapLines(e: TapLine, wide: boolean): string[] {
  const proxy = e.direction === 'inbound' ? 'in' : 'out';
  const who = `id=${e.proxy}:${e.seq} proxy=${proxy} src=${short(e.src) || '-'} dst=${short(e.dst) || '-'} tls=${e.tls}`;
  const pods = wide ? ` src_pod=${e.srcPod || '-'} dst_pod=${e.dstPod || '-'}` : '';
  return [
    `req ${who}${pods} :method=${e.method} :authority=${e.authority} :path=${e.path}`,
    `rsp ${who}${pods} :status=${e.status}${e.grpcStatus !== undefined ? ` grpc-status=${e.grpcStatus}` : ''} latency=${e.latencyUs}µs duration=${e.durationUs}µs response-length=${e.bytes}B`
      + (e.error !== undefined ? ` error=${e.error}` : '') + (e.reason !== undefined ? ` reason=${JSON.stringify(e.reason)}` : ''),
  ];
}

/** The filters tap and top share: which proxies, which requests, how many a second. */
export function tapFilters(cmd: Command): Command {
  return cmd
    .option('-n, --namespace <namespace>', 'namespace of the resource', 'default')
    .option('--to <resource>', 'only requests to this resource (TYPE/NAME)')
    .option('--to-namespace <namespace>', 'namespace of --to (default: --namespace)')
    .option('--path <prefix>', 'only requests whose path starts with this')
    .option('--method <method>', 'only requests with this method')
    .option('--authority <authority>', 'only requests to this authority (Host)')
    .option('--max-rps <n>', 'requests per second each proxy reports, at most', '100');
}

export function registerTap(program: Command): void {
  const cmd = program
    .command('tap')
    .description('stream live requests through the proxies of a resource, like linkerd viz tap (needs the admin credential)')
    .argument('<resource>', 'TYPE/NAME: deploy/reviews-v2, pod/NAME, svc/reviews or ns/default');
  tapFilters(cmd)
    .option('-o, --output <format>', 'lines, wide or json (json adds the headers, secrets redacted)')
    .option('--count <n>', 'stop after this many requests')
    .option('--duration <duration>', 'stop after this long, e.g. 30s')
    .action(async (resource: string, f: TapFlags, cmd: Command) => {
      const format = outputFormat(f.output, ['lines', 'wide', 'json']);
      const count = f.count === undefined ? Infinity : Number(f.count);
      if (!(count > 0)) throw new MeshError(`--count must be a positive number, not '${f.count}'`, 'e.g. --count 10');
      let seen = 0;
      await runTap(cmd, resource, f, format === 'json', (e) => {
        if (format === 'json') process.stdout.write(JSON.stringify(e) + '\n');
        else process.stdout.write(tapLines(e, format === 'wide').join('\n') + '\n');
        return ++seen >= count;
      }, format === 'json');
    });
}
