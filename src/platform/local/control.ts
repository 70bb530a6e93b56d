// The local control plane as a background process: start, stop, and ask its version.
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { ControlClient, ControlUnreachable } from '../../api/client.js';
import { MeshError } from '../../util/errors.js';
import { portInUse, sleep } from '../../util/net.js';
import { MESH_BIN } from '../../version.js';
import { isMeshProcess, type StateDir } from './state.js';
import { stopPid } from './processes.js';

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
