// What every command resolves first: the platform and state it acts on, and how to print.
import type { Command } from 'commander';
import { StateDir } from '../platform/local/state.js';
import { MeshError } from '../util/errors.js';
import { banner } from '../ui/output.js';

export interface GlobalOptions {
  stateDir?: string;
  platform?: string;
  kubeconfig?: string;
  context?: string;
  verbose?: boolean;
}

export interface Context {
  platform: 'local';
  state: StateDir;
}

/**
 * The platform a command acts on: --platform, else MESH_PLATFORM, else local. A kubeconfig alone does not switch
 * to Kubernetes: local users with a kubeconfig for other work would be surprised.
 */
export function platformOf(cmd: Command): 'local' | 'kubernetes' {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const platform = g.platform ?? (process.env.MESH_PLATFORM || 'local');
  if (platform !== 'local' && platform !== 'kubernetes') throw new MeshError(`unknown platform '${platform}'`, 'use --platform local or --platform kubernetes');
  return platform;
}

/** Commands that have no Kubernetes implementation yet say so in one line. */
export function context(cmd: Command, quiet = false): Context {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  if (platformOf(cmd) === 'kubernetes') {
    throw new MeshError(`'mesh ${cmd.name()}' does not support the kubernetes platform yet`, 'use the local platform (drop --platform kubernetes / MESH_PLATFORM)');
  }
  const state = new StateDir(g.stateDir);
  if (!quiet) banner('local', state.display);
  return { platform: 'local', state };
}

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

/** The Kubernetes target of a command: the kubeconfig context, like kubectl picks it. Loads client-node. */
export async function kubeContext(cmd: Command, quiet = false): Promise<import('../platform/kubernetes/client.js').KubeClient> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const { KubeClient } = await import('../platform/kubernetes/client.js');
  const kube = await KubeClient.connect({ kubeconfig: g.kubeconfig, context: g.context });
  if (!quiet) kubeBanner(kube.contextName);
  return kube;
}

export function kubeBanner(contextName: string): void {
  banner('kubernetes', contextName, 'context');
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
