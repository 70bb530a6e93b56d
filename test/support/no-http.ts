// A preload (NODE_OPTIONS --require) that watches a sidecar process for node:http / node:https (issue 14: ~0.6 MB
// RSS a sidecar does without). In a sidecar (a local workload's mesh-sidecar, or `mesh proxy --platform kubernetes`)
// a require of either fails and is written down with its stack; at exit the process writes every http builtin it
// loaded however (ES imports and Node's own loads included), from process.moduleLoadList. Other processes (the CLI,
// the apps) it leaves alone.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NoHttpWatch {
  /** NODE_OPTIONS for the processes to watch (their children inherit it). */
  readonly env: { NODE_OPTIONS: string };
  /** What the process wrote at exit: the http builtins it loaded; undefined while it has not exited (cleanly). */
  loaded(pid: number): string[] | undefined;
  /** The stacks of every require of node:http(s) a watched process tried. */
  required(): string[];
  cleanup(): void;
}

export function watchForHttp(): NoHttpWatch {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-nohttp-'));
  const preload = join(dir, 'no-http.cjs');
  writeFileSync(preload, `
const Module = require('node:module');
const fs = require('node:fs');
const argv = process.argv;
const sidecar = /mesh-sidecar\\.c?js$/.test(argv[1] || '') || (argv.includes('proxy') && argv.includes('kubernetes'));
if (sidecar) {
  const out = (ext, text) => fs.writeFileSync(${JSON.stringify(dir)} + '/' + process.pid + ext, text);
  const load = Module._load;
  Module._load = function (request, ...rest) {
    if (/^(node:)?https?$/.test(request)) {
      const err = new Error('a sidecar required ' + request);
      out('.required', err.stack);
      throw err;
    }
    return load.call(this, request, ...rest);
  };
  process.on('exit', () => out('.json', JSON.stringify(process.moduleLoadList.filter((m) => /^NativeModule (_http_\\w+|https?)$/.test(m)))));
}
`);
  return {
    env: { NODE_OPTIONS: `--require=${preload}` },
    loaded(pid) {
      const f = join(dir, `${pid}.json`);
      return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) as string[] : undefined;
    },
    required: () => readdirSync(dir).filter((f) => f.endsWith('.required')).map((f) => readFileSync(join(dir, f), 'utf8')),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
