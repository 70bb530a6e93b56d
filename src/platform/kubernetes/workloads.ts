// Who a pod is, as users name it: its workload from its owners (Pod → ReplicaSet → Deployment, StatefulSet,
// DaemonSet, Job; a bare Pod is its own), the Services that select it (EndpointSlices), and its ServiceAccount.
// Pure, for the control plane (stat, policy names) and inject (the proxy's `deployment` label).
import type { EndpointSlice, OwnerReference, Pod } from './resources.js';
import type { WorkloadNames } from '../../model/snapshot.js';

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
const TEMPLATE_HASH_LABEL = 'pod-template-hash';

/**
 * The workload a pod belongs to. A ReplicaSet made by a Deployment is named `<deployment>-<pod-template-hash>`
 * and its pods carry the hash label, so the Deployment is known without reading the ReplicaSet (as Linkerd's
 * naming does, minus the API call). A CronJob's Job is named for itself.
 */
export function workloadOf(meta: { name?: string; generateName?: string; labels?: Record<string, string>; ownerReferences?: OwnerReference[] } | undefined): { kind: string; name: string } {
  const owner = meta?.ownerReferences?.find((o) => o.controller) ?? meta?.ownerReferences?.[0];
  if (owner?.name && owner.kind) {
    const hash = meta?.labels?.[TEMPLATE_HASH_LABEL];
    if (owner.kind === 'ReplicaSet' && hash && owner.name.endsWith(`-${hash}`)) return { kind: 'Deployment', name: owner.name.slice(0, -hash.length - 1) };
    return { kind: owner.kind, name: owner.name };
  }
  return { kind: 'Pod', name: meta?.name ?? meta?.generateName?.replace(/-$/, '') ?? '' };
}

/** `ns/pod` → the Services whose EndpointSlices list the pod (ready or not), sorted. */
export function podServices(slices: Iterable<EndpointSlice>): Map<string, string[]> {
  const out = new Map<string, Set<string>>();
  for (const slice of slices) {
    const ns = slice.metadata?.namespace ?? '';
    const service = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!service) continue;
    for (const ep of slice.endpoints ?? []) {
      if (ep.targetRef?.kind !== 'Pod' || !ep.targetRef.name) continue;
      const key = `${ep.targetRef.namespace ?? ns}/${ep.targetRef.name}`;
      let set = out.get(key);
      if (!set) out.set(key, (set = new Set()));
      set.add(service);
    }
  }
  return new Map([...out].map(([k, v]) => [k, [...v].sort()]));
}

const live = (pod: Pod) => !pod.metadata?.deletionTimestamp && pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed';

/**
 * The names the snapshot carries for policy: each Service and each workload (`ns/name`) with its live pods'
 * ServiceAccounts, and each meshed pod with the Services that select it (what `--to` names) and its workload.
 */
export function workloadNames(pods: Iterable<Pod>, slices: Iterable<EndpointSlice>, meshed: (p: Pod) => boolean): WorkloadNames {
  const byPod = podServices(slices);
  const accounts = new Map<string, Set<string>>();
  const add = (key: string, sa: string) => {
    let set = accounts.get(key);
    if (!set) accounts.set(key, (set = new Set()));
    set.add(sa);
  };
  const podsOut: WorkloadNames['pods'] = {};
  for (const pod of pods) {
    if (!live(pod)) continue;
    const ns = pod.metadata?.namespace ?? '';
    const key = `${ns}/${pod.metadata?.name ?? ''}`;
    const sa = pod.spec?.serviceAccountName || 'default';
    const services = byPod.get(key) ?? [];
    const workload = workloadOf(pod.metadata).name;
    add(`${ns}/${workload}`, sa);
    for (const s of services) add(`${ns}/${s}`, sa);
    if (meshed(pod)) podsOut[key] = { workload, services };
  }
  const identities: WorkloadNames['identities'] = {};
  for (const k of [...accounts.keys()].sort()) identities[k] = [...accounts.get(k)!].sort();
  return { identities, pods: podsOut };
}
