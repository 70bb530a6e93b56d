// What every command resolves first: the platform and state it acts on, and how to print.
import type { Command } from 'commander';
import { StateDir } from '../platform/local/state.js';
import { MeshError } from '../util/errors.js';
import { banner } from '../ui/output.js';

export interface GlobalOptions {
  stateDir?: string;
  platform?: string;
  verbose?: boolean;
}

export interface Context {
  platform: 'local';
  state: StateDir;
}

export function context(cmd: Command, quiet = false): Context {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const platform = g.platform ?? 'local';
  if (platform === 'kubernetes') {
    throw new MeshError('the kubernetes platform is not available in this build yet', "use the local platform (the default), e.g. 'mesh install'");
  }
  if (platform !== 'local') throw new MeshError(`unknown platform '${platform}'`, "use --platform local or --platform kubernetes");
  const state = new StateDir(g.stateDir);
  if (!quiet) banner('local', state.display);
  return { platform: 'local', state };
}

export type OutputFormat = 'table' | 'json';

export function outputFormat(value: string | undefined, allowed: string[] = ['table', 'json']): string {
  const v = value ?? allowed[0]!;
  if (!allowed.includes(v)) throw new MeshError(`unknown output format '${v}'`, `use -o ${allowed.join(' or -o ')}`);
  return v;
}

/** Turns a validation failure from shared model code into a one-line error with a hint. */
export function checked<T>(fn: () => T, hint: string): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof MeshError) throw err;
    throw new MeshError((err as Error).message, hint);
  }
}
