// Installing the mesh on the local platform: identity and secrets in the state dir, and the
// control plane as a background process.
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { createIssuer, createTrustAnchor, DAY } from '../../identity/ca.js';
import { ControlClient, ControlUnreachable } from '../../proxy/control-client.js';
import { MeshError } from '../../util/errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../../util/fs.js';
import { MESH_BIN, VERSION } from '../../version.js';
import { isMeshProcess, type MeshConfig, type StateDir } from './state.js';
import { stopPid } from './processes.js';

export interface InstallOptions {
  trustDomain: string;
  controlPort?: number;
  certLifetimeMs?: number;
}

/** Creates identity, secrets and config; on any failure removes what it wrote. */
export async function initState(state: StateDir, o: InstallOptions): Promise<MeshConfig> {
  state.ensureWritable();
  const written: string[] = [];
  const put = (path: string, data: string, mode: number) => {
    writeFileAtomic(path, data, mode);
    written.push(path);
  };
  try {
    mkdirSync(state.path('identity'), { recursive: true, mode: 0o700 });
    const anchor = await createTrustAnchor(o.trustDomain);
    const issuer = await createIssuer(o.trustDomain, anchor);
    put(state.anchorCertPath, anchor.certPem, 0o644);
    put(state.anchorKeyPath, anchor.keyPem, 0o600);
    put(state.issuerCertPath, issuer.certPem, 0o644);
    put(state.issuerKeyPath, issuer.keyPem, 0o600);
    put(state.joinKeyPath, randomBytes(32).toString('base64url'), 0o600);
    put(state.adminTokenPath, randomBytes(32).toString('base64url'), 0o600);
    const cfg: MeshConfig = {
      platform: 'local',
      trustDomain: o.trustDomain,
      controlPort: o.controlPort || (await freePort()),
      version: VERSION,
      createdAt: new Date().toISOString(),
      certLifetimeMs: o.certLifetimeMs ?? DAY,
    };
    // The config goes last: its presence is what marks the state dir as installed.
    writeJsonAtomic(state.configPath, cfg);
    return cfg;
  } catch (err) {
    for (const p of written) rmSync(p, { force: true });
    throw err;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export function adminClient(state: StateDir): ControlClient {
  const cfg = state.config();
  const anchors = state.readSecret(state.anchorCertPath, 'the trust anchor');
  return new ControlClient(`127.0.0.1:${cfg.controlPort}`, anchors, cfg.trustDomain);
}

/** The control plane's version when it answers, undefined when it does not. */
export async function controlVersion(state: StateDir, timeoutMs = 2000): Promise<string | undefined> {
  const client = adminClient(state);
  try {
    const { status, body } = await client.request<{ version: string }>('GET', '/v1/version', undefined, { timeoutMs });
    return status === 200 ? body.version : undefined;
  } catch (err) {
    if (err instanceof ControlUnreachable) return undefined;
    throw err;
  } finally {
    client.close();
  }
}

export async function startControl(state: StateDir, timeoutMs = 20_000): Promise<number> {
  const cfg = state.config();
  if (await portInUse(cfg.controlPort)) {
    throw new MeshError(`control-plane port 127.0.0.1:${cfg.controlPort} is taken by another process`, `stop that process, or pick another port: mesh install --control-port N (on a fresh state dir)`);
  }
  mkdirSync(state.path('logs'), { recursive: true, mode: 0o700 });
  const log = openSync(state.controlLog, 'a');
  const child = spawn(process.execPath, [MESH_BIN, 'control', '--state-dir', state.root], {
    detached: true,
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  let exited: number | null = null;
  child.on('exit', (code) => (exited = code ?? 1));
  child.unref();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited !== null) {
      throw new MeshError(`the control plane exited at start (code ${exited})`, `see ${state.controlLog}`);
    }
    if ((await controlVersion(state, 1000)) !== undefined) return cfg.controlPort;
    await sleep(150);
  }
  stopPid(child.pid);
  throw new MeshError(`the control plane did not answer within ${timeoutMs / 1000} s`, `see ${state.controlLog}`);
}

export async function stopControl(state: StateDir): Promise<boolean> {
  const rec = state.control();
  if (!rec || !isMeshProcess(rec.pid)) {
    rmSync(state.controlPath, { force: true });
    return false;
  }
  await stopPid(rec.pid);
  rmSync(state.controlPath, { force: true });
  return true;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
