// `mesh workloads` on Kubernetes: the pods of the users' namespaces with the names mesh gives them (workload from
// the owners, the Services that select them, the version label), whether a proxy runs in them, and a status as
// kubectl get pods would say it.
import chalk from 'chalk';
import type { KubeClient } from './client.js';
import { workloadOf, podServices } from './workloads.js';
import type { EndpointSlice } from './resources.js';
import { CONTROL_NAMESPACE, PROXY_CONTAINER } from './names.js';
import type { WorkloadList } from '../index.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
interface ContainerStatus { name: string; ready?: boolean; restartCount?: number; state?: { waiting?: { reason?: string }; terminated?: { reason?: string; exitCode?: number } } }

/** The cluster's own namespaces and the control plane's: not workloads of the mesh's users. */
const SYSTEM_NAMESPACES = new Set(['kube-system', 'kube-public', 'kube-node-lease', CONTROL_NAMESPACE]);
const KIND_SHORT: Record<string, string> = { Deployment: 'deploy', StatefulSet: 'sts', DaemonSet: 'ds', Job: 'job', CronJob: 'cronjob', ReplicaSet: 'rs', Pod: 'po' };

export interface KubeWorkloadRecord {
  namespace: string;
  pod: string;
  workload: { kind: string; name: string };
  services: string[];
  version?: string;
  status: string;
  /** ready, not ready, exited (a finished Job's), or none (not meshed). */
  proxy: 'ready' | 'not ready' | 'exited' | 'none';
  restarts: number;
  ip?: string;
  startedAt?: string;
}

export async function kubeWorkloads(kube: KubeClient): Promise<WorkloadList> {
  const [pods, slices] = await Promise.all([kube.list<Obj>('v1', 'Pod'), kube.list<EndpointSlice & Obj>('discovery.k8s.io/v1', 'EndpointSlice')]);
  const services = podServices(slices);
  const records: KubeWorkloadRecord[] = pods
    .filter((p) => !SYSTEM_NAMESPACES.has(p.metadata?.namespace))
    .map((p) => record(p, services.get(`${p.metadata?.namespace}/${p.metadata?.name}`) ?? []))
    .sort((a, b) => `${a.namespace}/${a.pod}`.localeCompare(`${b.namespace}/${b.pod}`));
  const meshed = records.filter((r) => r.proxy !== 'none').length;
  return {
    records,
    head: ['NAMESPACE', 'POD', 'WORKLOAD', 'SERVICE', 'VERSION', 'STATUS', 'PROXY', 'RESTARTS', 'AGE'],
    rows: records.map((r) => [r.namespace, r.pod, `${KIND_SHORT[r.workload.kind] ?? r.workload.kind.toLowerCase()}/${r.workload.name}`,
      r.services.join(',') || '-', r.version ?? '-', r.status, r.proxy === 'none' ? '-' : r.proxy, String(r.restarts), r.startedAt ? age(r.startedAt) : '-']),
    empty: `No pods in the cluster's user namespaces (${kube.contextName}). Mesh an app with 'mesh inject app.yaml | kubectl apply -f -', or run the sample with 'mesh --platform kubernetes demo'.`,
    notes: records.length && meshed < records.length
      ? [chalk.dim(`${records.length - meshed} of ${records.length} pods have no mesh proxy: label their namespace mesh.io/inject=enabled and restart them, or 'mesh inject' their manifests.`)]
      : [],
  };
}

function record(p: Obj, services: string[]): KubeWorkloadRecord {
  const statuses = (p.status?.containerStatuses ?? []) as ContainerStatus[];
  const inits = (p.status?.initContainerStatuses ?? []) as ContainerStatus[];
  const hasProxy = [...(p.spec?.initContainers ?? []), ...(p.spec?.containers ?? [])].some((c: Obj) => c.name === PROXY_CONTAINER);
  const proxyStatus = [...inits, ...statuses].find((s) => s.name === PROXY_CONTAINER);
  const finished = p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed';
  return {
    namespace: p.metadata?.namespace ?? '',
    pod: p.metadata?.name ?? '',
    workload: workloadOf(p.metadata),
    services,
    version: p.metadata?.labels?.version,
    status: status(p, statuses),
    proxy: !hasProxy ? 'none' : finished ? 'exited' : proxyStatus?.ready ? 'ready' : 'not ready',
    restarts: statuses.filter((s) => s.name !== PROXY_CONTAINER).reduce((n, s) => n + (s.restartCount ?? 0), 0),
    ip: p.status?.podIP,
    startedAt: p.status?.startTime ?? p.metadata?.creationTimestamp,
  };
}

/** As kubectl get pods says it: Terminating, a container's waiting or failed reason, else the phase. */
function status(p: Obj, statuses: ContainerStatus[]): string {
  if (p.metadata?.deletionTimestamp) return 'Terminating';
  if (p.status?.reason) return p.status.reason as string;
  for (const s of statuses) {
    if (s.state?.waiting?.reason) return s.state.waiting.reason;
    if (s.state?.terminated?.reason && p.status?.phase !== 'Succeeded') return s.state.terminated.reason;
  }
  if (p.status?.phase === 'Succeeded') return 'Completed';
  return p.status?.phase ?? 'Unknown';
}

function age(since: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(since)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}
