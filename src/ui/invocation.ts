// How the user reaches this mesh from their shell, so every command we print runs as printed:
// `mesh` when that is on PATH, `npx mesh` where npx finds this package, else `node <path>`; plus
// the --state-dir the user gave (MESH_HOME carries over by itself).
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { delimiter, dirname, join, relative } from 'node:path';
import { MESH_BIN, PACKAGE_ROOT } from '../version.js';

let flags = '';
let cached: string | undefined;

/** Remembers the global flags of this command line that select the mesh (called once by cli.ts). */
export function rememberInvocation(argv: string[]): void {
  const i = argv.indexOf('--state-dir');
  const eq = argv.find((a) => a.startsWith('--state-dir='));
  const dir = i > 0 && argv[i + 1] !== undefined && !argv.slice(2, i).includes('--') ? argv[i + 1] : eq?.slice('--state-dir='.length);
  flags = dir ? ` --state-dir ${quote(dir)}` : '';
  cached = undefined;
}

const quote = (s: string) => (/^[\w@%+=:,./~-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

function same(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

/** Whether `npx mesh` run in cwd reaches this package: npx runs the bin of the nearest package.json's project. */
function npxFinds(cwd: string): boolean {
  for (let dir = cwd; ; dir = dirname(dir)) {
    const bin = join(dir, 'node_modules', '.bin', 'mesh');
    if (existsSync(bin)) return same(bin, MESH_BIN);
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'mesh') return same(dir, PACKAGE_ROOT);
      } catch {
        // not a package we can read: keep looking up
      }
    }
    if (dirname(dir) === dir) return false;
  }
}

/** The command that reaches this mesh, e.g. `npx mesh --state-dir /tmp/m`. */
export function meshCommand(): string {
  if (cached !== undefined) return cached;
  const onPath = (process.env.PATH ?? '').split(delimiter).some((d) => d && same(join(d, 'mesh'), MESH_BIN));
  let bin: string;
  if (onPath) bin = 'mesh';
  else if (process.env.npm_command === 'exec' || npxFinds(process.cwd())) bin = 'npx mesh';
  else {
    const rel = relative(process.cwd(), MESH_BIN);
    bin = `node ${quote(rel.startsWith('..') ? MESH_BIN : rel)}`;
  }
  return (cached = bin + flags);
}

/** `mesh ARGS` as the user can type it here. */
export const meshCmd = (args: string): string => `${meshCommand()} ${args}`;

/** Rewrites the quoted commands in a message ('mesh install') into ones that run here. */
export function runnable(text: string): string {
  const cmd = meshCommand();
  return cmd === 'mesh' ? text : text.replace(/'mesh(?=[ '])/g, `'${cmd}`);
}
