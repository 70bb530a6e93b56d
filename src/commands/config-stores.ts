// The store `mesh route` and `mesh policy` read and write, picked by the platform: the local control plane's admin
// API, or the Route and Policy custom resources on Kubernetes.
import type { Command } from 'commander';
import { context, kubeContext, platformOf } from './context.js';
import { localRouteStore, type RouteStore } from '../platform/local/route-store.js';
import { localPolicyStore, type PolicyStore } from '../platform/local/policy-store.js';

export interface Waits {
  /** False where the CLI cannot see which snapshot each proxy applied (Kubernetes): it then does not wait. */
  waitsForProxies?: boolean;
}

export async function routeStoreFor(cmd: Command, quiet = false): Promise<RouteStore & Waits> {
  if (platformOf(cmd) === 'kubernetes') return (await import('../platform/kubernetes/config-store.js')).kubeRouteStore(await kubeContext(cmd, quiet));
  return localRouteStore(context(cmd, quiet).state);
}

export async function policyStoreFor(cmd: Command, quiet = false): Promise<PolicyStore & Waits> {
  if (platformOf(cmd) === 'kubernetes') return (await import('../platform/kubernetes/config-store.js')).kubePolicyStore(await kubeContext(cmd, quiet));
  return localPolicyStore(context(cmd, quiet).state);
}
