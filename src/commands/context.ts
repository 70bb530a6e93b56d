// What every command resolves first: the platform and state it acts on, and how to print.
import type { Command } from 'commander';
import { platformFor, type Platform } from '../platform/index.js';
import { MeshError } from '../util/errors.js';

export { checked } from '../util/errors.js';

export interface GlobalOptions {
  stateDir?: string;
  platform?: string;
  kubeconfig?: string;
  context?: string;
  verbose?: boolean;
}

/** The path of a command as `mesh <path>` names it, e.g. 'identity show'. */
export function commandPath(cmd: Command): string {
  const path: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) path.unshift(c.name());
  return path.join(' ');
}

/** The platform a command acts on, from the global options; quiet: no banner (JSON output, daemons). */
export function platform(cmd: Command, quiet = false): Platform {
  return platformFor({ ...cmd.optsWithGlobals<GlobalOptions>(), quiet, command: commandPath(cmd) });
}

export function outputFormat(value: string | undefined, allowed: string[] = ['table', 'json']): string {
  const v = value ?? allowed[0]!;
  if (!allowed.includes(v)) throw new MeshError(`unknown output format '${v}'`, `use -o ${allowed.join(' or -o ')}`);
  return v;
}

const KIND_WORDS: Record<string, string[]> = {
  service: ['svc', 'service', 'services'],
  pod: ['po', 'pod', 'pods'],
};

/** A resource named as NAME or kubectl's TYPE/NAME (svc/reviews): the NAME, or a one-line error for another TYPE. */
export function resourceName(arg: string, kind: keyof typeof KIND_WORDS): string {
  const slash = arg.indexOf('/');
  if (slash < 0) return arg;
  const type = arg.slice(0, slash).toLowerCase();
  if (!KIND_WORDS[kind]!.includes(type)) {
    throw new MeshError(`'${arg}' is not a ${kind}`, `name it as NAME or ${KIND_WORDS[kind]![0]}/NAME`);
  }
  return arg.slice(slash + 1);
}
