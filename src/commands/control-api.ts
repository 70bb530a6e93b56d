// Read-only calls to the control plane, wherever it runs: the local admin API, or the Kubernetes API server's
// service proxy to mesh-control.
import type { Command } from 'commander';
import { context, kubeContext, platformOf } from './context.js';
import { adminGet } from '../platform/local/admin.js';

export interface ControlReader {
  get<T>(path: string): Promise<T>;
}

export async function controlReaderFor(cmd: Command, quiet = false): Promise<ControlReader> {
  if (platformOf(cmd) === 'kubernetes') {
    const kube = await kubeContext(cmd, quiet);
    const { controlGet } = await import('../platform/kubernetes/control-proxy.js');
    return { get: (path) => controlGet(kube, path) };
  }
  const { state } = context(cmd, quiet);
  return { get: (path) => adminGet(state, path) };
}
