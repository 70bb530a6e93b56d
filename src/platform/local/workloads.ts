// Workloads on the local platform: an app process with its sidecar. `mesh run` is the sidecar and
// supervises the app; detached runs are the same process started in the background.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { startProxy, type RunningProxy } from '../../proxy/runtime.js';
import { MeshError } from '../../util/errors.js';
import { MESH_BIN } from '../../version.js';
import { isAlive, recordAlive, type StateDir, type WorkloadRecord } from './state.js';
import { portInUse, sleep } from '../../util/net.js';
import { stopPid } from './processes.js';

/**
 * A sidecar's garbage is short-lived (one request's objects): a small young generation keeps its
 * memory down at little cost, where V8's default lets it grow to 48 MB under load.
 */
export const SIDECAR_V8_FLAGS = [`--max-semi-space-size=${process.env.MESH_SEMI_SPACE_MB ?? '2'}`];

export interface WorkloadSpec {
  kind: 'workload' | 'ingress';
  service: string;
  namespace: string;
  version: string;
  instance?: string;
  appPort?: number;
  command?: string[];
  /** Ingress only: where it listens, and the service that gets requests for names it does not know. */
  ingressPort?: number;
  defaultService?: string;
  /** Marks what `mesh demo` started, so `mesh demo --down` stops only that. */
  demo?: boolean;
  accessLog?: boolean;
  traceCollector?: string;
}

export function newInstanceName(spec: WorkloadSpec): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  const suffix = [...randomBytes(5)].map((b) => alphabet[b % alphabet.length]).join('');
  return spec.kind === 'ingress' ? `ingress-${suffix}` : `${spec.service}-${spec.version}-${suffix}`;
}

/** Refuses what cannot work before anything starts: a running duplicate, a taken port. */
export async function checkCanRun(state: StateDir, spec: WorkloadSpec & { instance: string }): Promise<void> {
  for (const rec of state.workloads()) {
    const live = recordAlive(rec);
    if (!live) {
      state.removeWorkload(rec.instance);
      continue;
    }
    if (rec.instance === spec.instance) {
      throw new MeshError(`workload ${spec.instance} is already running (pid ${rec.pid})`, `stop it with 'mesh stop ${spec.instance}', or choose another --instance`);
    }
    if (spec.appPort && rec.appPort === spec.appPort) {
      throw new MeshError(`port ${spec.appPort} is already used by workload ${rec.instance}`, 'choose another --port');
    }
  }
  const port = spec.kind === 'ingress' ? spec.ingressPort : spec.appPort;
  if (port && (await portInUse(port))) {
    throw new MeshError(`port 127.0.0.1:${port} is already in use`, spec.kind === 'ingress' ? 'choose another --port for the ingress' : 'choose another --port for the app');
  }
}

/** Runs a workload in this process until its app exits or a signal stops it; returns the exit code. */
export async function runWorkload(state: StateDir, spec: WorkloadSpec & { instance: string }, onStarted?: (rec: WorkloadRecord) => void): Promise<number> {
  const cfg = state.config();
  const anchors = state.readSecret(state.anchorCertPath, 'the trust anchor');
  await checkCanRun(state, spec);
  const log = (msg: string) => process.stderr.write(`[proxy ${spec.instance}] ${msg}\n`);
  const proxy: RunningProxy = await startProxy({
    mode: spec.kind === 'ingress' ? 'ingress' : 'sidecar',
    namespace: spec.namespace,
    service: spec.service,
    version: spec.version,
    instance: spec.instance,
    trustDomain: cfg.trustDomain,
    trustAnchorsPem: anchors,
    controlAddress: `127.0.0.1:${cfg.controlPort}`,
    joinToken: state.joinToken(spec.namespace, spec.service),
    cacheDir: state.proxyCacheDir(spec.namespace, spec.service),
    appPort: spec.appPort,
    outboundPort: spec.kind === 'ingress' ? spec.ingressPort ?? 0 : 0,
    defaultService: spec.defaultService,
    accessLog: spec.accessLog,
    traceCollector: spec.traceCollector,
    log,
  });
  const rec: WorkloadRecord = {
    instance: spec.instance,
    kind: spec.kind,
    service: spec.service,
    namespace: spec.namespace,
    version: spec.version,
    pid: process.pid,
    appPort: spec.appPort,
    command: spec.command,
    outbound: proxy.outbound,
    inbound: proxy.inbound,
    admin: proxy.admin,
    state: 'starting',
    startedAt: new Date().toISOString(),
    log: state.workloadLog(spec.instance),
    ...(spec.demo ? { demo: true } : {}),
  } as WorkloadRecord;

  let app: ChildProcess | undefined;
  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((r) => (resolveExit = r));
  let stopping = false;
  const shutdown = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await proxy.deregister();
    if (app && app.exitCode === null && app.signalCode === null) await stopPid(app.pid, 5000);
    await proxy.close();
    state.removeWorkload(spec.instance);
    resolveExit(code);
  };
  process.on('SIGINT', () => void shutdown(130));
  process.on('SIGTERM', () => void shutdown(0));
  process.on('SIGHUP', () => void shutdown(129));

  if (spec.kind === 'workload') {
    const [cmd, ...args] = spec.command ?? [];
    if (!cmd) throw new MeshError('no command to run', "put the app's command after --, e.g. mesh run --name web --port 8080 -- node server.js");
    app = spawn(cmd, args, { stdio: 'inherit', env: appEnv(spec, proxy.outbound) });
    const spawnError = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      app!.once('spawn', () => resolve(null));
      app!.once('error', resolve);
    });
    if (spawnError) {
      await proxy.close();
      throw new MeshError(`cannot start the app '${cmd}': ${spawnError.code === 'ENOENT' ? 'command not found' : spawnError.message}`, 'check the command after --');
    }
    rec.appPid = app.pid;
    app.on('exit', (code, signal) => {
      if (!stopping) log(`app exited (${signal ?? `code ${code}`}); stopping the sidecar`);
      void shutdown(code ?? 1);
    });
    // The endpoint joins its service once the app accepts connections.
    void (async () => {
      while (!stopping) {
        if (await portInUse(spec.appPort!)) {
          if (!stopping) proxy.register(process.pid);
          return;
        }
        await sleep(100);
      }
    })();
  }
  // The ingress has no app to wait for: it joins at once, so the control plane can scrape it.
  if (spec.kind === 'ingress') proxy.register(process.pid);
  rec.state = 'running';
  state.writeWorkload(rec);
  onStarted?.(rec);
  return exited;
}

function appEnv(spec: WorkloadSpec, outbound: string): NodeJS.ProcessEnv {
  const proxyUrl = `http://${outbound}`;
  return {
    ...process.env,
    PORT: String(spec.appPort),
    MESH_OUTBOUND: outbound,
    HTTP_PROXY: proxyUrl,
    http_proxy: proxyUrl,
    NO_PROXY: 'localhost,127.0.0.1',
    no_proxy: 'localhost,127.0.0.1',
    MESH_SERVICE: spec.service,
    MESH_NAMESPACE: spec.namespace,
    MESH_VERSION: spec.version,
    SERVICE_VERSION: spec.version,
    MESH_INSTANCE: spec.instance ?? '',
  };
}

/** Starts a workload in the background and waits until it runs (and, bounded, until its app listens). */
export async function launchDetached(state: StateDir, spec: WorkloadSpec, timeoutMs = 30_000): Promise<{ rec: WorkloadRecord; appListening: boolean }> {
  const instance = spec.instance ?? newInstanceName(spec);
  await checkCanRun(state, { ...spec, instance });
  const args = [MESH_BIN, spec.kind === 'ingress' ? 'ingress' : 'run', '--state-dir', state.root, '--instance', instance,
    '--namespace', spec.namespace];
  if (spec.demo) args.push('--demo');
  if (spec.accessLog) args.push('--access-log');
  if (spec.traceCollector) args.push('--trace-collector', spec.traceCollector);
  if (spec.kind === 'ingress') {
    args.push('--port', String(spec.ingressPort ?? 0), '--service', spec.defaultService ?? '');
  } else {
    args.push('--name', spec.service, '--version', spec.version, '--port', String(spec.appPort), '--', ...(spec.command ?? []));
  }
  mkdirSync(state.path('logs'), { recursive: true, mode: 0o700 });
  const logPath = state.workloadLog(instance);
  const fd = openSync(logPath, 'a');
  const child = spawn(process.execPath, [...SIDECAR_V8_FLAGS, ...args], { detached: true, stdio: ['ignore', fd, fd], cwd: process.cwd() });
  closeSync(fd);
  let exitCode: number | null = null;
  child.on('exit', (code) => (exitCode = code ?? 1));
  child.unref();
  const deadline = Date.now() + timeoutMs;
  let rec: WorkloadRecord | undefined;
  while (Date.now() < deadline) {
    if (exitCode !== null) throw new MeshError(`${instance} exited at start: ${lastLine(logPath)}`, `see ${logPath}`);
    rec = state.workloads().find((r) => r.instance === instance && r.pid === child.pid && r.state === 'running');
    if (rec) break;
    await sleep(50);
  }
  if (!rec) {
    await stopPid(child.pid);
    throw new MeshError(`${instance} did not start within ${timeoutMs / 1000} s`, `see ${logPath}`);
  }
  let appListening = spec.kind === 'ingress';
  const appDeadline = Date.now() + Math.min(10_000, timeoutMs);
  while (!appListening && Date.now() < appDeadline && exitCode === null) {
    appListening = await portInUse(spec.appPort!);
    if (!appListening) await sleep(100);
  }
  if (exitCode !== null) throw new MeshError(`${instance} exited at start: ${lastLine(logPath)}`, `see ${logPath}`);
  return { rec, appListening };
}

function lastLine(path: string): string {
  try {
    const lines = readFileSync(path, 'utf8').trim().split('\n').filter((l) => !l.startsWith('[proxy'));
    return (lines.pop() ?? '').replace(/^error: /, '') || 'no output';
  } catch {
    return 'no output';
  }
}

/** Stops workloads (all, or those `match` picks) and their apps; returns what was stopped. */
export async function stopWorkloads(state: StateDir, match: (r: WorkloadRecord) => boolean = () => true): Promise<WorkloadRecord[]> {
  const recs = state.workloads().filter(match);
  await Promise.all(recs.map(async (r) => {
    if (recordAlive(r)) await stopPid(r.pid);
    if (isAlive(r.appPid)) await stopPid(r.appPid);
    state.removeWorkload(r.instance);
  }));
  return recs;
}
