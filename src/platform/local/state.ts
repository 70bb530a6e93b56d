// The local platform's state directory: identity, secrets, control-plane and workload records.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { createHmac } from 'node:crypto';
import { MeshError } from '../../util/errors.js';
import { readJson, writeFileAtomic, writeJsonAtomic } from '../../util/fs.js';

export interface MeshConfig {
  platform: 'local';
  trustDomain: string;
  controlPort: number;
  version: string;
  createdAt: string;
  /** Workload certificate lifetime in ms (24 h unless set for tests). */
  certLifetimeMs: number;
  /** How often the control plane scrapes proxy metrics, in ms (10 s unless set). */
  scrapeIntervalMs?: number;
}

export interface ControlRecord {
  pid: number;
  port: number;
  version: string;
  startedAt: string;
  /** Set when it stopped by itself (a signal not from mesh uninstall). */
  stoppedAt?: string;
}

export interface WorkloadRecord {
  instance: string;
  /** A process is a plain helper mesh started (the demo's traffic generator), without a sidecar. */
  kind: 'workload' | 'ingress' | 'process';
  service: string;
  namespace: string;
  version: string;
  pid: number;
  appPid?: number;
  appPort?: number;
  /** Upstream listeners: service:port → 127.0.0.1:port. */
  upstreams?: { authority: string; address: string }[];
  /** h2c when the app serves HTTP/2 cleartext (absent: HTTP/1.1). */
  appProtocol?: 'h2c';
  command?: string[];
  outbound: string;
  inbound?: string;
  admin: string;
  /** restarting: its app exited and waits to be started again; exited: it ended (the record stays to say how). */
  state: 'starting' | 'running' | 'restarting' | 'exited';
  startedAt: string;
  log?: string;
  demo?: boolean;
  restart?: 'on-failure' | 'always';
  restarts?: number;
  lastRestartAt?: string;
  exitCode?: number;
  exitSignal?: string;
  exitedAt?: string;
}

export function defaultStateDir(): string {
  return resolve(process.env.MESH_HOME || join(homedir(), '.mesh'));
}

export class StateDir {
  readonly root: string;

  constructor(root?: string) {
    this.root = resolve(root || defaultStateDir());
  }

  /** Shortened for messages: ~/.mesh rather than /home/user/.mesh. */
  get display(): string {
    const home = homedir();
    return this.root.startsWith(home + '/') ? '~' + this.root.slice(home.length) : this.root;
  }

  path(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  get configPath() { return this.path('mesh.json'); }
  get anchorCertPath() { return this.path('identity', 'trust-anchor.crt'); }
  get anchorKeyPath() { return this.path('identity', 'trust-anchor.key'); }
  get issuerCertPath() { return this.path('identity', 'issuer.crt'); }
  get issuerKeyPath() { return this.path('identity', 'issuer.key'); }
  get joinKeyPath() { return this.path('secrets', 'join.key'); }
  get adminTokenPath() { return this.path('secrets', 'admin.token'); }
  get controlPath() { return this.path('control.json'); }
  get controlLog() { return this.path('logs', 'control.log'); }
  get registryPath() { return this.path('registry.json'); }
  workloadPath(instance: string) { return this.path('workloads', `${instance}.json`); }
  workloadLog(instance: string) { return this.path('logs', `${instance}.log`); }
  proxyCacheDir(namespace: string, service: string) { return this.path('proxies', namespace, service); }

  isInstalled(): boolean {
    return existsSync(this.configPath);
  }

  /** The install's config, or a clear error when there is none. */
  config(): MeshConfig {
    const cfg = readJson<MeshConfig>(this.configPath, 'mesh config', "restore it, or run 'mesh uninstall --purge' and 'mesh install' to start over");
    if (!cfg) throw new MeshError(`mesh is not installed in ${this.display}`, "run 'mesh install' first");
    if (typeof cfg.trustDomain !== 'string' || typeof cfg.controlPort !== 'number') {
      throw new MeshError(`mesh config ${this.configPath} is incomplete`, "restore it, or run 'mesh uninstall --purge' and 'mesh install'");
    }
    return cfg;
  }

  readSecret(path: string, what: string): string {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch {
      throw new MeshError(`${what} is missing from ${this.display}`, "run 'mesh uninstall --purge' and 'mesh install' to re-create the mesh state");
    }
  }

  writeSecret(path: string, value: string): void {
    writeFileAtomic(path, value, 0o600);
  }

  adminToken(): string {
    return this.readSecret(this.adminTokenPath, 'the admin credential');
  }

  /** Join credential for one identity: the control plane signs only that identity for it. */
  joinToken(namespace: string, serviceAccount: string): string {
    return joinTokenFor(this.readSecret(this.joinKeyPath, 'the join key'), namespace, serviceAccount);
  }

  control(): ControlRecord | undefined {
    return readJson<ControlRecord>(this.controlPath, 'control-plane record');
  }

  workloads(): WorkloadRecord[] {
    const dir = this.path('workloads');
    if (!existsSync(dir)) return [];
    const out: WorkloadRecord[] = [];
    for (const f of readdirSync(dir)) {
      if (!f.endsWith('.json') || f.startsWith('.')) continue;
      try {
        const rec = readJson<WorkloadRecord>(join(dir, f), 'workload record');
        if (rec && typeof rec.instance === 'string') out.push(rec);
      } catch (err) {
        // One damaged record must not stop every command (uninstall above all): say so and go on.
        process.stderr.write(`warning: ${(err as Error).message}; ignoring it\n`);
      }
    }
    return out;
  }

  writeWorkload(rec: WorkloadRecord): void {
    writeJsonAtomic(this.workloadPath(rec.instance), rec);
  }

  removeWorkload(instance: string): void {
    rmSync(this.workloadPath(instance), { force: true });
  }

  /**
   * The state holds private keys, so only its owner may enter it: an existing directory of ours
   * that others can reach is tightened to 0700 (said in the returned line); one of another user is
   * refused (we cannot tighten it, and its owner could swap our files).
   */
  secure(): string | undefined {
    let st;
    try {
      st = statSync(this.root);
    } catch {
      return undefined; // made later, 0700
    }
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) {
      throw new MeshError(`state directory ${this.display} belongs to another user (uid ${st.uid}), who could read or replace the mesh's keys`, 'use a directory of your own with --state-dir or MESH_HOME');
    }
    const mode = st.mode & 0o777;
    if (!st.isDirectory() || (mode & 0o077) === 0) return undefined;
    chmodSync(this.root, 0o700);
    return `state directory ${this.display} was open to ${mode & 0o007 ? 'every user' : 'its group'} (mode ${mode.toString(8)}): tightened it to 700`;
  }

  ensureWritable(): void {
    try {
      mkdirSync(this.root, { recursive: true, mode: 0o700 });
      accessSync(this.root, constants.W_OK);
      if (!statSync(this.root).isDirectory()) throw new Error('not a directory');
    } catch (err) {
      throw new MeshError(`state directory ${this.display} is not writable (${(err as Error).message})`, 'pick another with --state-dir or MESH_HOME');
    }
  }
}

export function joinTokenFor(joinKey: string, namespace: string, serviceAccount: string): string {
  return createHmac('sha256', joinKey).update(`${namespace}/${serviceAccount}`).digest('base64url');
}

/** True when pid is alive and is one of ours (guards against pid reuse). */
export function isMeshProcess(pid: number | undefined, marker: RegExp = /mesh/): boolean {
  if (!isAlive(pid)) return false;
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return marker.test(cmd);
  } catch {
    return true;
  }
}

/** Whether the process a workload record names is still the one mesh started. */
export function recordAlive(rec: WorkloadRecord): boolean {
  return isMeshProcess(rec.pid, rec.kind === 'process' ? /demo\/traffic\.js/ : /mesh/);
}

export function isAlive(pid: number | undefined): boolean {
  if (!pid || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A zombie answers signals but is gone for every purpose here.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

const OURS = new Set(['mesh.json', 'identity', 'secrets', 'control.json', 'registry.json', 'config', 'logs', 'workloads', 'proxies']);

/** Removes the state dir, refusing when it holds anything mesh did not put there. */
export function removeState(dir: StateDir): void {
  if (!existsSync(dir.root)) return;
  const foreign = readdirSync(dir.root).filter((f) => !OURS.has(f) && !f.startsWith('.'));
  if (foreign.length) {
    throw new MeshError(`${dir.display} holds files mesh did not create (${foreign.slice(0, 3).join(', ')}); not removing it`, 'remove them yourself, or remove the directory by hand');
  }
  rmSync(dir.root, { recursive: true, force: true });
}

/** Undoes a fresh install that failed part-way: only what it wrote, and the dir if it made it. */
export function removeInstall(dir: StateDir, createdRoot: boolean): void {
  if (createdRoot) return void rmSync(dir.root, { recursive: true, force: true });
  for (const f of ['mesh.json', 'identity', 'secrets', 'control.json', 'registry.json']) rmSync(dir.path(f), { recursive: true, force: true });
}
