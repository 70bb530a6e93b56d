// Owns everything the bench starts: child processes, temp dirs and teardown steps.
// All of it is undone on normal exit, on error and on Ctrl-C/SIGTERM.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import http from 'node:http';
import http2 from 'node:http2';

const children = new Set(); // long-running: servers, proxies
const commands = new Set(); // run to completion: load generators, CLI calls
const tempDirs = new Set();
const teardowns = [];
let cleaning = null;

/** True once cleanup has begun: nothing new may start, except teardown commands. */
export function stopping() {
  return cleaning !== null;
}

function refuseIfStopping(what) {
  if (stopping()) throw new Error(`not starting ${what}: the bench is stopping`);
}

/** Spawn a long-running child that cleanup() will stop. Keeps a tail of its output for error messages. */
export function startProcess(cmd, args, opts = {}) {
  refuseIfStopping(cmd);
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  child.outputTail = '';
  const keep = (chunk) => { child.outputTail = (child.outputTail + chunk).slice(-4000); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.on('error', (err) => { keep(String(err.message)); });
  children.add(child);
  child.exited.then(() => children.delete(child));
  return child;
}

/**
 * Run a command to completion and collect its output. Resolves shortly after 'exit' even if a
 * daemon it left behind still holds the pipes open (mesh run -d), rather than waiting for 'close'.
 */
export function runCommand(cmd, args, { timeoutMs = 60_000, env, cwd, teardown = false } = {}) {
  return new Promise((resolve, reject) => {
    if (!teardown) refuseIfStopping(cmd);
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env, cwd });
    if (!teardown) commands.add(child);
    let stdout = '';
    let stderr = '';
    let done = false;
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    const finish = (code, signal) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      commands.delete(child);
      child.stdout.destroy();
      child.stderr.destroy();
      resolve({ code, signal, stdout, stderr });
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      stderr += `\n[bench] ${cmd} timed out after ${timeoutMs} ms`;
    }, timeoutMs);
    child.on('error', (err) => { done = true; clearTimeout(timer); commands.delete(child); reject(err); });
    child.on('close', (code, signal) => finish(code, signal));
    child.on('exit', (code, signal) => setTimeout(() => finish(code, signal), 300));
  });
}

export async function makeTempDir(prefix) {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Register an async teardown step; steps run in reverse order before children are killed. */
export function onCleanup(fn) {
  teardowns.push(fn);
}

/** Running (a zombie waiting for its reaper counts as gone). */
export function isAlive(pid) {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (err.code !== 'EPERM') return false;
  }
  try {
    // The state follows the parenthesised command name, which may itself contain spaces.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Wait until none of the pids is running, or timeoutMs passes; returns those still running. */
export async function waitGone(pids, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let left = [...pids].filter(isAlive);
  while (left.length && Date.now() < deadline) {
    await sleep(50);
    left = left.filter(isAlive);
  }
  return left;
}

/** SIGTERM a pid, then SIGKILL if it is still there after graceMs. */
export async function stopPid(pid, graceMs = 3000) {
  if (!pid || !isAlive(pid)) return;
  try { process.kill(pid, 'SIGTERM'); } catch { return; }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return;
    await sleep(50);
  }
  try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
}

export async function stopProcess(child, graceMs = 3000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = child.exited ?? new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export function cleanup() {
  cleaning ??= (async () => {
    // In-flight commands first (a half-done `mesh run` must not outlive the uninstall).
    await Promise.all([...commands].map((c) => stopProcess(c, 1000)));
    while (teardowns.length) {
      const fn = teardowns.pop();
      try { await fn(); } catch (err) { console.error(`[bench] cleanup step failed: ${err.message}`); }
    }
    await Promise.all([...children].map((c) => stopProcess(c)));
    await Promise.all([...tempDirs].map((d) => rm(d, { recursive: true, force: true })));
    tempDirs.clear();
  })();
  return cleaning;
}

/** Ctrl-C / SIGTERM run the same cleanup; a second signal, or process exit, kills what is left. */
export function installSignalHandlers() {
  let signalled = false;
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
    process.on(sig, () => {
      if (signalled) {
        killRemainingSync();
        process.exit(code);
      }
      signalled = true;
      console.error(`\n[bench] ${sig}: stopping everything the bench started...`);
      cleanup().finally(() => process.exit(code));
    });
  }
  process.on('exit', killRemainingSync);
}

function killRemainingSync() {
  for (const c of [...commands, ...children]) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
  for (const d of tempDirs) {
    try { rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ }
  }
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** A free TCP port on 127.0.0.1 (the OS picks; closed again before use). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** One GET; resolves to the status code, rejects on connection errors. */
export function probe(hostPort, hostHeader, timeoutMs = 2000) {
  const [host, port] = splitHostPort(hostPort);
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: '/', agent: false, timeout: timeoutMs, headers: { host: hostHeader } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', reject);
  });
}

/**
 * Poll until a request answers 200 or timeoutMs passes. `children` are checked on every round
 * so a proxy that died on a bad config fails fast with its own output.
 */
export function waitFor200(hostPort, hostHeader, { timeoutMs = 30_000, watch = [], what = hostPort } = {}) {
  return waitReady(async () => {
    const status = await probe(hostPort, hostHeader);
    if (status !== 200) throw new Error(`HTTP ${status}`);
  }, { timeoutMs, watch, what });
}

export function splitHostPort(hostPort) {
  const i = hostPort.lastIndexOf(':');
  return [hostPort.slice(0, i), Number(hostPort.slice(i + 1))];
}

/**
 * VmRSS and VmHWM of a pid in MB, or null if it is gone. anonMB is its private memory (RssAnon);
 * the rest of RSS is file pages, mostly the node binary's, which every node process on the host shares.
 */
export function readRss(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN);
    return { rssMB: kb('VmRSS') / 1024, hwmMB: kb('VmHWM') / 1024, anonMB: kb('RssAnon') / 1024 };
  } catch {
    return null;
  }
}

/** Proportional set size in MB (shared pages split among the processes that map them), or null. */
export function readPss(pid) {
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    return Number(rollup.match(/^Pss:\s+(\d+) kB/m)?.[1] ?? NaN) / 1024;
  } catch {
    return null;
  }
}

/** utime + stime of a pid in clock ticks (/proc/<pid>/stat fields 14 and 15), or null if it is gone. */
export function readCpuTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name, which may itself contain spaces: state is field 3.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}

let clockTicks = 0;
/** Clock ticks per second (getconf CLK_TCK; 100 on Linux unless told otherwise). */
export async function ticksPerSecond() {
  if (!clockTicks) {
    const r = await runCommand('getconf', ['CLK_TCK'], { timeoutMs: 5000 }).catch(() => null);
    clockTicks = Number(r?.stdout.trim()) || 100;
  }
  return clockTicks;
}

/** One gRPC-shaped h2c call (POST, application/grpc); resolves to the HTTP status and grpc-status. */
export function probeGrpc(hostPort, authority, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${hostPort}`);
    const timer = setTimeout(() => { session.destroy(); reject(new Error('gRPC probe timed out')); }, timeoutMs);
    session.on('error', (err) => { clearTimeout(timer); reject(err); });
    const req = session.request({ ':method': 'POST', ':path': '/bench.Bench/Unary', ':authority': authority,
      'content-type': 'application/grpc', te: 'trailers' });
    let status = 0;
    let grpcStatus = null;
    req.on('response', (h) => { status = h[':status']; grpcStatus = h['grpc-status'] ?? null; });
    req.on('trailers', (t) => { grpcStatus = t['grpc-status'] ?? grpcStatus; });
    req.on('error', () => {});
    req.resume();
    req.on('close', () => {
      clearTimeout(timer);
      session.close();
      resolve({ status, grpcStatus });
    });
    req.end(GRPC_EMPTY);
  });
}
const GRPC_EMPTY = Buffer.from([0, 0, 0, 0, 0]);

/** Sends a line and resolves once bytes come back (the bulk TCP server's answer). */
export function probeTcp(hostPort, timeoutMs = 2000) {
  const [host, port] = splitHostPort(hostPort);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('TCP probe timed out')); }, timeoutMs);
    sock.on('connect', () => sock.write('go\n'));
    sock.once('data', () => { clearTimeout(timer); sock.destroy(); resolve(); });
    sock.on('error', (err) => { clearTimeout(timer); reject(err); });
    sock.on('close', () => { clearTimeout(timer); reject(new Error('closed before any byte came back')); });
  });
}

/** Poll a readiness check (resolves when ready, throws while not) until it passes or timeoutMs passes. */
export async function waitReady(check, { timeoutMs = 30_000, watch = [], what }) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    refuseIfStopping(what);
    for (const c of watch) {
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`${what}: ${c.spawnfile} exited (${c.exitCode ?? c.signalCode}) before it was ready:\n${c.outputTail.trim()}`);
      }
    }
    try {
      await check();
      return;
    } catch (err) {
      last = err.message;
    }
    await sleep(200);
  }
  throw new Error(`${what} was not ready within ${timeoutMs} ms (last: ${last})`);
}

/** Ready once a gRPC call answers HTTP 200 with grpc-status 0. */
export function waitForGrpc(hostPort, authority, opts) {
  return waitReady(async () => {
    const r = await probeGrpc(hostPort, authority);
    if (r.status !== 200 || r.grpcStatus !== '0') throw new Error(`HTTP ${r.status}, grpc-status ${r.grpcStatus}`);
  }, { what: hostPort, ...opts });
}

export function waitForTcp(hostPort, opts) {
  return waitReady(() => probeTcp(hostPort), { what: hostPort, ...opts });
}
