// mesh top: the busiest paths of a resource right now, from a tap (as linkerd viz top does), refreshed in place.
import type { Command } from 'commander';
import { outputFormat } from './context.js';
import { runTap, tapFilters, type TapFlags, type TapLine } from './tap.js';

export interface TopRow {
  source: string;
  destination: string;
  method: string;
  path: string;
  count: number;
  bestUs: number;
  worstUs: number;
  lastUs: number;
  successes: number;
}

const MAX_ROWS = 10_000;

/** Aggregates tapped requests by source, destination, method and path. */
export class TopTable {
  private readonly rows = new Map<string, TopRow>();

  add(e: TapLine): void {
    const source = e.srcPod || e.src.replace(/^spiffe:\/\/[^/]+\//, '') || '-';
    const destination = e.dstPod || e.dst.replace(/^spiffe:\/\/[^/]+\//, '') || '-';
    const path = e.path.split('?')[0]!;
    const key = `${source}\0${destination}\0${e.method}\0${path}`;
    let r = this.rows.get(key);
    if (!r) {
      if (this.rows.size >= MAX_ROWS) return;
      this.rows.set(key, (r = { source, destination, method: e.method, path, count: 0, bestUs: Infinity, worstUs: 0, lastUs: 0, successes: 0 }));
    }
    r.count++;
    r.lastUs = e.latencyUs;
    r.bestUs = Math.min(r.bestUs, e.latencyUs);
    r.worstUs = Math.max(r.worstUs, e.latencyUs);
    if (e.status < 500 && (e.grpcStatus === undefined || e.grpcStatus === '0')) r.successes++;
  }

  /** Busiest first. */
  top(n = 50): TopRow[] {
    return [...this.rows.values()].sort((a, b) => b.count - a.count || a.path.localeCompare(b.path)).slice(0, n);
  }
}

const ms = (us: number) => (us >= 10_000 ? `${Math.round(us / 1000)}ms` : `${(us / 1000).toFixed(1)}ms`);

export function renderTop(rows: TopRow[]): string {
  const head = ['Source', 'Destination', 'Method', 'Path', 'Count', 'Best', 'Worst', 'Last', 'Success Rate'];
  const cells = rows.map((r) => [r.source, r.destination, r.method, r.path, String(r.count), ms(r.bestUs), ms(r.worstUs), ms(r.lastUs), `${((100 * r.successes) / r.count).toFixed(2)}%`]);
  const width = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  return [head, ...cells].map((c) => c.map((v, i) => v.padEnd(width[i]!)).join('  ').trimEnd()).join('\n');
}

export function registerTop(program: Command): void {
  const cmd = program
    .command('top')
    .description('the busiest paths of a resource, live (from a tap; needs the admin credential); q or Ctrl-C quits')
    .argument('<resource>', 'TYPE/NAME: deploy/productpage-v1, pod/NAME, svc/reviews or ns/default');
  tapFilters(cmd)
    .option('-o, --output <format>', 'table, or json (a snapshot per refresh)')
    .option('--refresh <duration>', 'how often the table is redrawn', '1s')
    .option('--duration <duration>', 'stop after this long, e.g. 30s')
    .action(async (resource: string, f: TapFlags & { refresh: string }, cmd: Command) => {
      const format = outputFormat(f.output, ['table', 'json']);
      const { parseDuration } = await import('../util/duration.js');
      const every = parseDuration(f.refresh, '--refresh');
      const table = new TopTable();
      const live = format === 'table' && process.stdout.isTTY === true;
      const draw = () => {
        const rows = table.top();
        if (format === 'json') process.stdout.write(JSON.stringify({ at: new Date().toISOString(), rows }) + '\n');
        else process.stdout.write((live ? '\x1b[H\x1b[2J' : '') + renderTop(rows) + '\n' + (live ? '\n(q to quit)\n' : '\n'));
      };
      const timer = setInterval(draw, every);
      let quit = false;
      const stdin = process.stdin;
      const onKey = (b: Buffer) => {
        if (b[0] === 0x71 || b[0] === 0x03) quit = true;
      };
      if (live && stdin.isTTY) {
        stdin.setRawMode(true);
        stdin.on('data', onKey);
      }
      try {
        await runTap(cmd, resource, f, false, (e) => {
          table.add(e);
          return quit;
        }, format === 'json');
      } finally {
        clearInterval(timer);
        if (live && stdin.isTTY) {
          stdin.setRawMode(false);
          stdin.off('data', onKey);
          stdin.pause();
        }
      }
      draw();
    });
}
