// `mesh workloads` on the local platform: the records in the state directory, with a status as kubectl get pods
// would say it.
import chalk from 'chalk';
import { recordAlive, type StateDir, type WorkloadRecord } from './state.js';
import { meshCmd, runnable } from '../../ui/invocation.js';
import type { WorkloadList } from '../index.js';

export function localWorkloads(state: StateDir): WorkloadList {
  const recs = state.workloads().map((r) => ({ ...r, status: status(r) }));
  return {
    records: recs,
    head: ['NAMESPACE', 'INSTANCE', 'SERVICE', 'VERSION', 'STATUS', 'RESTARTS', 'APP', 'OUTBOUND', 'INBOUND', 'AGE'],
    rows: recs.map((r) => [r.namespace, r.instance, r.kind === 'ingress' ? '(ingress)' : r.service, r.version, r.status,
      r.restarts ? `${r.restarts} (${age(r.lastRestartAt!)} ago)` : '0',
      r.kind === 'ingress' || r.kind === 'process' ? '-' : String(r.appPort ?? '(client)'), r.outbound, r.inbound ?? '-', age(r.startedAt)]),
    empty: runnable("No workloads running. Start one with 'mesh run', or the sample with 'mesh demo'."),
    notes: recs.some((r) => r.state === 'exited') ? [chalk.dim(`Exited workloads stay listed until '${meshCmd('stop INSTANCE')}' (their logs are in the state dir's logs/).`)] : [],
  };
}

/** What kubectl get pods would say: Running, Restarting (back-off after a crash), Exited (code N), Gone (its sidecar died). */
function status(r: WorkloadRecord): string {
  if (r.state === 'exited') return `Exited (${r.exitSignal ?? `code ${r.exitCode ?? '?'}`}, ${age(r.exitedAt ?? r.startedAt)} ago)`;
  if (!recordAlive(r)) return 'Gone (its sidecar died)';
  if (r.state === 'restarting') return `Restarting (app exited with ${r.exitSignal ?? `code ${r.exitCode ?? '?'}`})`;
  return r.state === 'starting' ? 'Starting' : 'Running';
}

function age(since: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(since)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}
