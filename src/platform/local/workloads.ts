// Workloads on the local platform: an app process with its sidecar. `mesh run` is the sidecar and
// supervises the app; detached runs are the same process started in the background.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { startProxy, type RunningProxy } from '../../proxy/runtime.js';
import { MeshError } from '../../util/errors.js';
import { fileURLToPath } from 'node:url';
import { isAlive, recordAlive, type StateDir, type WorkloadRecord } from './state.js';
import { portInUse, sleep } from '../../util/net.js';
import { stopPid } from './processes.js';
import { appEnvOf, sidecarEnv, sidecarNodeFlags } from '../sidecar-flags.js';
import type { PortSet, UpstreamDecl } from '../../model/ports.js';
import type { AppProtocol } from '../../model/app-protocol.js';
import { isoTime } from '../../util/iso-time.js';
import type { SidecarSpecJson } from './mesh-sidecar.js';

const SIDECAR_MAIN = sidecarMain();

/**
 * The sidecar's entry: scripts/bundle.mjs's one-file CommonJS bundle (~2 MB less RSS, issue 14), unless it is missing
 * or older than tsc's output (a tree compiled without the bundle step must not run stale code).
 */
function sidecarMain(): string {
  const js = fileURLToPath(new URL('./mesh-sidecar.js', import.meta.url));
  const cjs = js.replace(/\.js$/, '.cjs');
  try {
    if (statSync(cjs).mtimeMs >= statSync(js).mtimeMs) return cjs;
  } catch {
    // no bundle
  }
  return js;
}

export interface WorkloadSpec {
  kind: 'workload' | 'ingress';
  service: string;
  namespace: string;
  version: string;
  instance?: string;
  appPort?: number;
  /** What the app serves on appPort (absent: HTTP/1.1). */
  appProtocol?: AppProtocol;
  command?: string[];
  /** Ingress only: where it listens, and the service that gets requests for names it does not know. */
  ingressPort?: number;
  defaultService?: string;
  /** Marks what `mesh demo` started, so `mesh demo --down` stops only that. */
  demo?: boolean;
  accessLog?: boolean;
  traceCollector?: string;
  /** Local listeners for services' ports (`--upstream redis:6379=127.0.0.1:16379`). */
  upstreams?: UpstreamDecl[];
  /** Ports never sniffed for HTTP (`--opaque-ports 3306,6379`). */
  opaquePorts?: PortSet;
  /** What the sidecar does when its app exits (default never: it exits too, with the app's code). */
  restart?: RestartPolicy;
}

export type RestartPolicy = 'never' | 'on-failure' | 'always';

export function newInstanceName(spec: WorkloadSpec): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  const suffix = [...randomBytes(5)].map((b) => alphabet[b % alphabet.length]).join('');
  return spec.kind === 'ingress' ? `ingress-${suffix}` : `${spec.service}-${spec.version}-${suffix}`;
}

/** The exit code of a `mesh run` whose port was taken, so a launcher that picked the port can pick another. */
const EXIT_PORT_IN_USE = 3;

/** A port taken by another process between being picked and being checked. */
export class PortInUse extends MeshError {}

/** Refuses what cannot work before anything starts: a running duplicate, a taken port. */
export async function checkCanRun(state: StateDir, spec: WorkloadSpec & { instance: string }): Promise<void> {
  for (const rec of state.workloads()) {
    const live = recordAlive(rec);
    if (!live) {
      if (rec.state !== 'exited' || rec.instance === spec.instance) state.removeWorkload(rec.instance);
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
    throw new PortInUse(`port 127.0.0.1:${port} is already in use`, spec.kind === 'ingress' ? 'choose another --port for the ingress' : 'choose another --port for the app', { exitCode: EXIT_PORT_IN_USE });
  }
}

/** Runs a workload in this process until its app exits or a signal stops it; returns the exit code. */
export async function runWorkload(state: StateDir, spec: WorkloadSpec & { instance: string }, onStarted?: (rec: WorkloadRecord) => void): Promise<number> {
  const cfg = state.config();
  const anchors = state.readSecret(state.anchorCertPath, 'the trust anchor');
  await checkCanRun(state, spec);
  const log = (msg: string) => process.stderr.write(`[proxy ${spec.instance}] ${msg}\n`);
  const proxy: RunningProxy = await startProxy({
    mode: spec.kind === 'ingress' ? 'ingress' : spec.appPort === undefined ? 'client' : 'sidecar',
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
    appProtocol: spec.appProtocol,
    outboundPort: spec.kind === 'ingress' ? spec.ingressPort ?? 0 : 0,
    defaultService: spec.defaultService,
    accessLog: spec.accessLog,
    traceCollector: spec.traceCollector,
    upstreams: spec.upstreams,
    opaquePorts: spec.opaquePorts,
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
    ...(spec.appProtocol ? { appProtocol: spec.appProtocol } : {}),
    command: spec.command,
    outbound: proxy.outbound,
    inbound: proxy.inbound,
    admin: proxy.admin,
    ...(proxy.upstreams.length ? { upstreams: proxy.upstreams } : {}),
    state: 'starting',
    startedAt: isoTime(),
    log: state.workloadLog(spec.instance),
    ...(spec.restart && spec.restart !== 'never' ? { restart: spec.restart, restarts: 0 } : {}),
    ...(spec.demo ? { demo: true } : {}),
  } as WorkloadRecord;

  let app: ChildProcess | undefined;
  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((r) => (resolveExit = r));
  let stopping = false;
  let backoff: NodeJS.Timeout | undefined;
  const shutdown = async (code: number, keep?: Partial<WorkloadRecord>) => {
    if (stopping) return;
    stopping = true;
    clearTimeout(backoff);
    await proxy.deregister();
    if (app && app.exitCode === null && app.signalCode === null) await stopPid(app.pid, 5000);
    await proxy.close();
    // An app that ended by itself stays listed with how it ended, as kubectl shows a finished pod.
    if (keep) state.writeWorkload({ ...rec, ...keep });
    else state.removeWorkload(spec.instance);
    resolveExit(code);
  };
  process.on('SIGINT', () => void shutdown(130));
  process.on('SIGTERM', () => void shutdown(0));
  process.on('SIGHUP', () => void shutdown(129));

  if (spec.kind === 'workload') {
    const [cmd, ...args] = spec.command ?? [];
    if (!cmd) throw new MeshError('no command to run', "put the app's command after --, e.g. 'mesh run --name web --port 8080 -- node server.js'");
    const policy = spec.restart ?? 'never';
    const startApp = async (): Promise<void> => {
      const child = spawn(cmd, args, { stdio: 'inherit', env: appEnv(spec, proxy.outbound) });
      app = child;
      const spawnError = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
        child.once('spawn', () => resolve(null));
        child.once('error', resolve);
      });
      if (spawnError) {
        await proxy.close();
        throw new MeshError(`cannot start the app '${cmd}': ${spawnError.code === 'ENOENT' ? 'command not found' : spawnError.message}`, 'check the command after --');
      }
      const startedAt = Date.now();
      rec.appPid = child.pid;
      child.on('exit', (code, signal) => {
        if (stopping) return;
        const how = signal ? `signal ${signal}` : `code ${code}`;
        const failed = signal !== null || code !== 0;
        if (policy === 'always' || (policy === 'on-failure' && failed)) {
          // Back off as kubelet does (doubling, capped), and start over once the app ran a while.
          restartDelayMs = Date.now() - startedAt > RESTART_RESET_MS ? RESTART_MIN_MS : Math.min(restartDelayMs * 2, RESTART_MAX_MS);
          log(`app exited (${how}); restarting it in ${restartDelayMs / 1000} s (--restart ${policy})`);
          void proxy.deregister();
          Object.assign(rec, { state: 'restarting', exitCode: code ?? undefined, exitSignal: signal ?? undefined, exitedAt: isoTime() });
          state.writeWorkload(rec);
          backoff = setTimeout(() => {
            if (stopping) return;
            rec.restarts = (rec.restarts ?? 0) + 1;
            rec.lastRestartAt = isoTime();
            startApp().then(() => {
              rec.state = 'running';
              state.writeWorkload(rec);
            }, (err: Error) => {
              log(err.message);
              void shutdown(1, { state: 'exited', exitCode: 127, exitedAt: isoTime() });
            });
          }, restartDelayMs);
          return;
        }
        log(`app exited (${how}); stopping the sidecar (--restart ${policy})`);
        // A crash stays listed; a clean end (code 0, or a stop signal) leaves nothing behind.
        const crashed = failed && !(signal && STOP_SIGNALS.includes(signal));
        void shutdown(code ?? 1, crashed ? { state: 'exited', exitCode: code ?? undefined, exitSignal: signal ?? undefined, exitedAt: isoTime() } : undefined);
      });
      if (spec.appPort === undefined) return;
      // The endpoint joins its service once the app accepts connections.
      void (async () => {
        while (!stopping && app === child && child.exitCode === null) {
          if (await portInUse(spec.appPort!)) {
            if (!stopping && app === child) proxy.register(process.pid);
            return;
          }
          await sleep(100);
        }
      })();
    };
    let restartDelayMs = RESTART_MIN_MS / 2;
    await startApp();
  }
  // The ingress has no app to wait for, and a client-only workload serves nothing: they join at once.
  if (spec.kind === 'ingress' || spec.appPort === undefined) proxy.register(process.pid);
  rec.state = 'running';
  state.writeWorkload(rec);
  onStarted?.(rec);
  return exited;
}

/** Restart back-off of a crashing app: 1 s doubling to 30 s; back to 1 s after it ran 10 s. */
const RESTART_MIN_MS = 1000;
const RESTART_MAX_MS = 30_000;
const RESTART_RESET_MS = 10_000;
const STOP_SIGNALS: string[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function appEnv(spec: WorkloadSpec, outbound: string): NodeJS.ProcessEnv {
  const proxyUrl = `http://${outbound}`;
  return {
    ...appEnvOf(),
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
  // The lean entry (mesh-sidecar.ts): the spec as JSON, checked here already.
  const json: SidecarSpecJson = { ...spec, instance, opaquePorts: spec.opaquePorts?.size ? spec.opaquePorts.toString() : undefined };
  const args = [SIDECAR_MAIN, state.root, JSON.stringify(json)];
  mkdirSync(state.path('logs'), { recursive: true, mode: 0o700 });
  const logPath = state.workloadLog(instance);
  const fd = openSync(logPath, 'a');
  const child = spawn(process.execPath, [...sidecarNodeFlags(), ...args], { detached: true, stdio: ['ignore', fd, fd], cwd: process.cwd(), env: sidecarEnv() });
  closeSync(fd);
  let exitCode: number | null = null;
  child.on('exit', (code) => (exitCode = code ?? 1));
  child.unref();
  const deadline = Date.now() + timeoutMs;
  let rec: WorkloadRecord | undefined;
  while (Date.now() < deadline) {
    if (exitCode !== null) throw exitedAtStart(instance, exitCode, logPath);
    rec = state.workloads().find((r) => r.instance === instance && r.pid === child.pid && r.state !== 'starting');
    if (rec) break;
    await sleep(50);
  }
  if (!rec) {
    await stopPid(child.pid);
    throw new MeshError(`${instance} did not start within ${timeoutMs / 1000} s`, `see ${logPath}`);
  }
  let appListening = spec.kind === 'ingress' || spec.appPort === undefined;
  const appDeadline = Date.now() + Math.min(10_000, timeoutMs);
  while (!appListening && Date.now() < appDeadline && exitCode === null) {
    appListening = await portInUse(spec.appPort!);
    if (!appListening) await sleep(100);
  }
  if (exitCode !== null) throw exitedAtStart(instance, exitCode, logPath);
  return { rec, appListening };
}

function exitedAtStart(instance: string, exitCode: number, logPath: string): MeshError {
  const E = exitCode === EXIT_PORT_IN_USE ? PortInUse : MeshError;
  return new E(`${instance} exited at start: ${lastLine(logPath)}`, `see ${logPath}`);
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
