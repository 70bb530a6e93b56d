// Test harness: drives the real mesh binary against a temp state dir, and cleans up after itself.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import type http from 'node:http';
import { call, callJson, type CallOptions, type Reply } from './http.js';
import { start, type Started } from './process.js';

export type { Reply };

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const MESH_BIN = join(ROOT, 'bin', 'mesh.js');
export const ECHO_APP = join(ROOT, 'test', 'fixtures', 'echo-app.mjs');
export const BEHAVE_APP = join(ROOT, 'test', 'fixtures', 'behave-app.mjs');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `mesh ARGS` to completion (bounded), feeding `stdin` if given; never throws on a non-zero exit. */
export function mesh(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; stdin?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MESH_BIN, ...args], {
      env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1', ...opts.env },
      stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c) => (stdout += c));
    child.stderr!.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mesh ${args.join(' ')} did not finish within ${opts.timeoutMs ?? 60_000} ms\n${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
    if (opts.stdin !== undefined) child.stdin!.end(opts.stdin);
  });
}

/** Starts a long-running `mesh ARGS` (control plane, proxy) without waiting for it to finish. */
export function startMesh(args: string[], env: NodeJS.ProcessEnv = {}): Started {
  return start(process.execPath, [MESH_BIN, ...args], { env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1', ...env }, name: `mesh ${args.join(' ')}` });
}

/** A fresh state dir with an installed mesh; `cleanup` uninstalls and removes it. */
export class TestMesh {
  readonly dir = mkdtempSync(join(tmpdir(), 'mesh-test-'));

  cli(args: string[], opts?: { env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<CliResult> {
    return mesh(['--state-dir', this.dir, ...args], opts);
  }

  async install(extra: string[] = []): Promise<void> {
    const r = await this.cli(['install', ...extra]);
    if (r.code !== 0) throw new Error(`install failed: ${r.stderr}`);
  }

  /** Starts a detached workload running the echo app; returns its record. */
  async run(name: string, opts: { version?: string; port?: number; extra?: string[]; app?: string; env?: NodeJS.ProcessEnv } = {}): Promise<WorkloadInfo> {
    const port = opts.port ?? (await freePort());
    const r = await this.cli(['run', '-d', '-o', 'json', '--name', name, '--version', opts.version ?? 'v1', '--port', String(port), ...(opts.extra ?? []), '--', process.execPath, opts.app ?? ECHO_APP], { env: opts.env });
    if (r.code !== 0) throw new Error(`run ${name} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as WorkloadInfo;
  }

  /** The control plane's API over TLS, verified against the trust anchor; `bearer` picks the caller. */
  api<T = Record<string, any>>(method: string, path: string, o: Omit<CallOptions, 'method' | 'tls'> & { cert?: string; key?: string } = {}) { // eslint-disable-line @typescript-eslint/no-explicit-any
    const file = (...p: string[]) => readFileSync(join(this.dir, ...p), 'utf8');
    const port = (JSON.parse(file('mesh.json')) as { controlPort: number }).controlPort;
    return callJson<T>(`https://127.0.0.1:${port}${path}`, { ...o, method, tls: { ca: file('identity', 'trust-anchor.crt'), cert: o.cert, key: o.key, checkServerIdentity: () => undefined } });
  }

  adminToken(): string {
    return readFileSync(join(this.dir, 'secrets', 'admin.token'), 'utf8').trim();
  }

  controlPid(): number | undefined {
    const p = join(this.dir, 'control.json');
    return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as { pid: number }).pid : undefined;
  }

  async cleanup(): Promise<void> {
    await this.cli(['uninstall', '--purge'], { timeoutMs: 60_000 }).catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface WorkloadInfo {
  instance: string;
  service: string;
  version: string;
  outbound: string;
  inbound: string;
  admin: string;
  pid: number;
  appPid: number;
  appPort: number;
}


import { freePort as loopbackPort } from '../../src/util/net.js';

const handedOut = new Set<number>();

/** A free loopback port this process has not handed out before, so that workloads started at once never collide. */
export const freePort = (): Promise<number> => loopbackPort(handedOut);

/** The error line: exactly one line starting with error:, with a hint after the dash, no stack. */
export function assertOneLineError(r: CliResult, pattern: RegExp): void {
  assert.notEqual(r.code, 0, `expected a failure, got: ${r.stdout}`);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('error'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, pattern);
  assert.match(lines[0]!, / — /, 'a hint follows the error');
  assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace');
}

/** One HTTP request to host:port (no pooling unless an agent is given). */
export function request(address: string, opts: { path?: string; method?: string; headers?: Record<string, string>; body?: string | Buffer; agent?: http.Agent; timeoutMs?: number } = {}): Promise<Reply> {
  return call(`http://${address}${opts.path ?? '/'}`, opts);
}

/** Polls `fn` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(what: string, fn: () => Promise<T> | T, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
