// The store `mesh route` and `mesh policy` read and write, picked by the platform: the local control plane's admin
// API, or the Route and Policy custom resources on Kubernetes.
import type { Command } from 'commander';
import { context, kubeContext, platformOf } from './context.js';
import { localConfigStore } from '../platform/local/config-store.js';
import type { ConfigName, EditableConfig } from '../api/config-store.js';

async function configStoreFor(cmd: Command, name: ConfigName, quiet: boolean): Promise<EditableConfig> {
  if (platformOf(cmd) === 'kubernetes') return (await import('../platform/kubernetes/config-store.js')).kubeConfigStore(await kubeContext(cmd, quiet), name);
  return localConfigStore(context(cmd, quiet).state, name);
}

export const routeStoreFor = (cmd: Command, quiet = false): Promise<EditableConfig> => configStoreFor(cmd, 'routes', quiet);
export const policyStoreFor = (cmd: Command, quiet = false): Promise<EditableConfig> => configStoreFor(cmd, 'policies', quiet);
