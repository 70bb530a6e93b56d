// Mesh path, built through the real CLI: client sidecar outbound (or upstream listener) → mTLS → server sidecar inbound → server.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand, onCleanup, makeTempDir, freePort, waitFor200, waitForGrpc, waitForTcp, waitGone, stopPid } from './procs.js';

/** Parse `mesh run -d -o json` output: one JSON object, possibly among other lines. */
function parseRunOutput(stdout) {
  for (const text of [stdout.trim(), ...stdout.split('\n').reverse()]) {
    if (!text.trim().startsWith('{')) continue;
    try {
      const obj = JSON.parse(text);
      if (obj && obj.outbound && obj.pid) return obj;
    } catch { /* try the next candidate */ }
  }
  throw new Error(`no JSON workload record in mesh run output:\n${stdout}`);
}

/** Every pid the state dir knows about: control plane, sidecars, apps. */
function recordedPids(stateDir) {
  const pids = new Set();
  const add = (file) => {
    try {
      const rec = JSON.parse(readFileSync(file, 'utf8'));
      for (const k of ['pid', 'appPid']) if (Number.isInteger(rec[k]) && rec[k] > 0) pids.add(rec[k]);
    } catch { /* missing or half-written */ }
  };
  add(join(stateDir, 'control.json'));
  try {
    for (const f of readdirSync(join(stateDir, 'workloads'))) if (f.endsWith('.json')) add(join(stateDir, 'workloads', f));
  } catch { /* no workloads yet */ }
  return pids;
}

/**
 * One mesh hop built with the CLI of the build in repoRoot. mode http: bench-server (HTTP/1.1) behind
 * the client's outbound listener; grpc: bench-grpc (h2c app, --app-protocol h2c) the same way; tcp:
 * bench-tcp (bulk source) behind an upstream listener of the client sidecar (--upstream).
 */
export async function setupMesh({ repoRoot, serverScript, log, variant = 'mesh', mode = 'http', extraEnv = {} }) {
  if (!existsSync(join(repoRoot, 'dist', 'src', 'cli.js'))) {
    throw new Error(`mesh CLI not built (${join(repoRoot, 'dist', 'src', 'cli.js')} missing): run \`npm run build\`, or skip with --only direct,haproxy`);
  }
  const stateDir = await makeTempDir('mesh-bench-state-');
  // MESH_HOME too, so nothing can fall back to ~/.mesh.
  // Variants price one feature each: metrics off in the sidecars, or a route in place.
  const env = { ...process.env, ...extraEnv, MESH_HOME: stateDir, ...(variant === 'mesh-nometrics' ? { MESH_PROXY_METRICS: 'off' } : {}) };
  const mesh = async (args, extraEnv = {}) => {
    const r = await runCommand(process.execPath, [join(repoRoot, 'bin', 'mesh.js'), ...args],
      { cwd: repoRoot, env: { ...env, ...extraEnv }, timeoutMs: 60_000, teardown: args[0] === 'uninstall' });
    if (r.code !== 0) throw new Error(`mesh ${args[0]} failed (${r.code ?? r.signal}):\n${(r.stderr || r.stdout).trim()}`);
    return r;
  };
  const seen = new Set();
  let torn = null;
  const teardown = () => (torn ??= (async () => {
    for (const pid of recordedPids(stateDir)) seen.add(pid);
    try {
      await mesh(['uninstall', '--state-dir', stateDir, '--purge']);
    } catch (err) {
      console.error(`[bench] ${err.message}`);
    }
    // uninstall should have stopped everything; anything still running is ours to stop.
    for (const pid of await waitGone(seen, 3000)) {
      console.error(`[bench] mesh process ${pid} survived uninstall; stopping it`);
      await stopPid(pid);
    }
  })());
  onCleanup(teardown);
  const remember = (rec) => { for (const pid of [rec.pid, rec.appPid]) if (Number.isInteger(pid) && pid > 0) seen.add(pid); };

  const service = mode === 'grpc' ? 'bench-grpc' : mode === 'tcp' ? 'bench-tcp' : 'bench-server';
  const serverPort = await freePort();
  const upstreamPort = mode === 'tcp' ? await freePort() : 0;
  log('mesh install');
  await mesh(['install', '--state-dir', stateDir]);
  log(`mesh run ${service}`);
  const server = parseRunOutput((await mesh(['run', '--state-dir', stateDir, '-d', '-o', 'json', '--name', service,
    '--port', String(serverPort), ...(mode === 'grpc' ? ['--app-protocol', 'h2c'] : []), '--', process.execPath, serverScript],
  { PORT: String(serverPort) })).stdout);
  remember(server);
  log('mesh run bench-client');
  const client = parseRunOutput((await mesh(['run', '--state-dir', stateDir, '-d', '-o', 'json', '--name', 'bench-client',
    ...(mode === 'tcp' ? ['--upstream', `${service}:${serverPort}=127.0.0.1:${upstreamPort}`] : []),
    '--', process.execPath, '-e', 'setInterval(()=>{},1<<30)'])).stdout);
  remember(client);
  const ready = { timeoutMs: 60_000, what: `mesh ${mode} path` };
  if (mode === 'grpc') await waitForGrpc(client.outbound, service, ready);
  else if (mode === 'tcp') await waitForTcp(`127.0.0.1:${upstreamPort}`, ready);
  else await waitFor200(client.outbound, service, ready);
  if (variant === 'mesh-route') {
    log('mesh route set bench-server v1 --timeout 5s --retries 2');
    await mesh(['route', 'set', 'bench-server', 'v1', '--timeout', '5s', '--retries', '2', '--state-dir', stateDir]);
  }
  return {
    url: mode === 'tcp' ? `127.0.0.1:${upstreamPort}` : `http://${client.outbound}/`,
    host: service,
    proxies: [{ name: 'client sidecar', label: 'client', pid: client.pid }, { name: 'server sidecar', label: 'server', pid: server.pid }],
    stop: teardown,
  };
}
