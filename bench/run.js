#!/usr/bin/env node
// Measures the same load three ways on 127.0.0.1: direct to a server, through the mesh's two
// sidecars (mTLS between them) and through two haproxies doing the same job; for HTTP/1.1, gRPC
// unary and bulk TCP. See bench/README.md.
import { parseArgs } from 'node:util';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execPath, version as nodeVersion } from 'node:process';
import { cpus, loadavg } from 'node:os';
import { installSignalHandlers, cleanup, stopping, startProcess, stopProcess, onCleanup, freePort, makeTempDir, waitFor200, waitForGrpc, waitForTcp } from './procs.js';
import { measurePath } from './load.js';
import { setupHaproxy, haproxyVersion, makeCerts } from './haproxy.js';
import { setupMesh } from './mesh.js';
import { summarize, printReport, GOALS } from './report.js';
import { measureTapCost } from './tap-cost.js';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(benchDir, '..');
const serverScript = join(benchDir, 'server.js');
const grpcServerScript = join(benchDir, 'grpc-server.js');
const tcpServerScript = join(benchDir, 'tcp-server.js');
const ALL_PATHS = ['direct', 'haproxy', 'relay-floor', 'mesh', 'mesh-nometrics', 'mesh-route', 'grpc-direct', 'grpc-haproxy', 'grpc-mesh', 'tcp-direct', 'tcp-haproxy', 'tcp-mesh', 'tap-cost'];

const USAGE = `usage: node bench/run.js [options]

  --duration <s>      seconds per measurement (default 10)
  --warmup <s>        seconds of warm-up before each measurement (default 2)
  --quick             smoke test: 3 s measurements, 1 s warm-ups
  --runs <n>          repeat the whole sequence n times; figures are each one's median (default 1)
  --only <list>       comma-separated subset of ${ALL_PATHS.join(',')}
  --connections <n>   wrk connections for max throughput (default 32)
  --rate <n>          fixed request rate for latency and CPU per request (default 1000)
  --workers <n>       hey workers / h2load clients at the fixed rate (default 10; each sends rate/workers req/s)
  --grpc-clients <n>  h2load connections for max gRPC throughput (default 4)
  --grpc-streams <n>  h2load calls in flight per connection for max throughput (default 8)
  --tcp-connections <n>  bulk TCP connections (default 4)
  --out <file>        JSON output (default bench/results/latest.json)
  -h, --help`;

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      quick: { type: 'boolean', default: false },
      runs: { type: 'string', default: '1' },
      only: { type: 'string' },
      connections: { type: 'string', default: '32' },
      rate: { type: 'string', default: '1000' },
      workers: { type: 'string', default: '10' },
      'grpc-clients': { type: 'string', default: '4' },
      'grpc-streams': { type: 'string', default: '8' },
      'tcp-connections': { type: 'string', default: '4' },
      out: { type: 'string', default: join(benchDir, 'results', 'latest.json') },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  // Whole numbers: wrk only takes whole seconds.
  const num = (name, v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive whole number, got ${v}`);
    return n;
  };
  const only = values.only ? values.only.split(',').map((s) => s.trim()).filter(Boolean) : ALL_PATHS;
  for (const p of only) if (!ALL_PATHS.includes(p)) throw new Error(`--only: unknown path ${p} (choose from ${ALL_PATHS.join(', ')})`);
  return {
    durationS: num('duration', values.duration ?? (values.quick ? 3 : 10)),
    warmupS: num('warmup', values.warmup ?? (values.quick ? 1 : 2)),
    runs: num('runs', values.runs),
    connections: num('connections', values.connections),
    rate: num('rate', values.rate),
    workers: num('workers', values.workers),
    grpcClients: num('grpc-clients', values['grpc-clients']),
    grpcStreams: num('grpc-streams', values['grpc-streams']),
    tcpConnections: num('tcp-connections', values['tcp-connections']),
    only,
    out: resolve(values.out),
  };
}

/** An app server child (HTTP/1.1, gRPC or bulk TCP) on a free port, ready before we return. */
async function startAppServer(mode = 'http') {
  const port = await freePort();
  const script = mode === 'grpc' ? grpcServerScript : mode === 'tcp' ? tcpServerScript : serverScript;
  const child = startProcess(execPath, [script], { env: { ...process.env, PORT: String(port) } });
  onCleanup(() => stopProcess(child));
  const hostPort = `127.0.0.1:${port}`;
  const ready = { timeoutMs: 10_000, watch: [child], what: `bench ${mode} server` };
  if (mode === 'grpc') await waitForGrpc(hostPort, 'bench-grpc', ready);
  else if (mode === 'tcp') await waitForTcp(hostPort, ready);
  else await waitFor200(hostPort, 'bench-server', ready);
  return { port, stop: () => stopProcess(child) };
}

const direct = (mode) => async () => {
  const app = await startAppServer(mode);
  const hostPort = `127.0.0.1:${app.port}`;
  return { mode, url: mode === 'tcp' ? hostPort : `http://${hostPort}/`, host: mode === 'grpc' ? 'bench-grpc' : 'bench-server', proxies: [], stop: app.stop };
};
const haproxy = (mode) => async () => {
  const app = await startAppServer(mode);
  const hap = await setupHaproxy({ appPort: app.port, mode });
  return { ...hap, mode, stop: async () => { await hap.stop(); await app.stop(); } };
};
/** bench/relay-floor.js: the haproxy path's shape with stream.pipe in each hop, the floor of a Node proxy. */
async function relayFloor() {
  const app = await startAppServer('http');
  const dir = await makeTempDir('mesh-bench-floor-');
  await makeCerts(dir);
  const hop = async (role, port) => {
    const child = startProcess(execPath, [join(benchDir, 'relay-floor.js'), role, String(port), dir]);
    onCleanup(() => stopProcess(child));
    const listening = await new Promise((resolve, reject) => {
      child.stdout.once('data', (d) => resolve(Number(String(d).trim())));
      child.once('exit', (code) => reject(new Error(`relay-floor ${role} exited (${code}): ${child.outputTail}`)));
    });
    return { child, port: listening };
  };
  const b = await hop('B', app.port);
  const a = await hop('A', b.port);
  const hostPort = `127.0.0.1:${a.port}`;
  await waitFor200(hostPort, 'bench-server', { timeoutMs: 15_000, watch: [a.child, b.child], what: 'relay floor' });
  return {
    mode: 'http', url: `http://${hostPort}/`, host: 'bench-server',
    proxies: [{ name: 'relay A (client side)', label: 'A', pid: a.child.pid }, { name: 'relay B (server side)', label: 'B', pid: b.child.pid }],
    stop: async () => { await Promise.all([stopProcess(a.child), stopProcess(b.child)]); await app.stop(); },
  };
}

const meshHop = (mode, variant = 'mesh') => async (log) => {
  const serverScriptFor = mode === 'grpc' ? grpcServerScript : mode === 'tcp' ? tcpServerScript : serverScript;
  return { ...(await setupMesh({ repoRoot, serverScript: serverScriptFor, log, variant, mode })), mode };
};

const setups = {
  direct: direct('http'),
  haproxy: haproxy('http'),
  // Node's floor for the same two hops: mesh / relay-floor is what the mesh adds to Node's own cost.
  'relay-floor': relayFloor,
  mesh: meshHop('http'),
  // The same hop with the sidecars' request metrics off: mesh / mesh-nometrics is what metrics cost.
  'mesh-nometrics': meshHop('http', 'mesh-nometrics'),
  // The same hop with a route (timeout and retries) in place: mesh-route / mesh is what routing costs.
  'mesh-route': meshHop('http', 'mesh-route'),
  'grpc-direct': direct('grpc'),
  'grpc-haproxy': haproxy('grpc'),
  'grpc-mesh': meshHop('grpc'),
  'tcp-direct': direct('tcp'),
  'tcp-haproxy': haproxy('tcp'),
  'tcp-mesh': meshHop('tcp'),
};

async function main() {
  const opts = parseOptions(process.argv.slice(2));
  installSignalHandlers();
  const started = new Date();
  const loadBefore = loadavg()[0];
  if (loadBefore > cpus().length / 2) {
    console.error(`[bench] load average is ${loadBefore.toFixed(1)} on ${cpus().length} cores: other work will skew the figures`);
  }
  const runs = [];
  // The whole sequence once per run, so a path's runs are spread over time like the load on the machine.
  for (let run = 1; run <= opts.runs && !stopping(); run++) {
    const paths = {};
    // One path at a time, each torn down before the next, so idle proxies don't share the cores.
    for (const name of ALL_PATHS) {
      if (stopping()) break;
      if (name === 'tap-cost') continue; // measured once after the runs, reported on its own (bench/tap-cost.js)
      if (!opts.only.includes(name)) {
        paths[name] = { skipped: true };
        continue;
      }
      const log = (msg) => console.error(`[${name}${opts.runs > 1 ? ` run ${run}` : ''}] ${msg}`);
      let target;
      try {
        log('setting up');
        target = await setups[name](log);
        paths[name] = { ...(await measurePath(target, opts, log)), loadavg: loadavg()[0] };
      } catch (err) {
        if (stopping()) break;
        log(`FAILED: ${err.message}`);
        paths[name] = { error: err.message };
      } finally {
        await target?.stop();
      }
    }
    runs.push(paths);
  }
  const paths = runs.length === 1 ? runs[0] : medianPaths(runs);

  const tapCost = !opts.only.includes('tap-cost') || stopping() ? { skipped: true }
    : await measureTapCost(opts.quick ? 5000 : 20000, (line) => console.error(`[tap-cost] ${line}`)).catch((err) => ({ error: err.message }));
  if (stopping()) return 130; // interrupted: no partial report

  const { ratios, goals } = summarize(paths);
  const { out: _out, ...config } = opts;
  const loadAfter = loadavg()[0];
  printReport({ config, paths, ratios, goals, loadavg: { before: loadBefore, after: loadAfter, cpus: cpus().length } });

  const record = {
    date: started.toISOString(),
    node: nodeVersion,
    haproxy: await haproxyVersion().catch(() => null),
    // Everything shares the same cores, so other load on the machine moves every figure.
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? null, loadavgBefore: loadBefore, loadavgAfter: loadAfter },
    config,
    tools: { throughput: 'wrk -t1', latency: 'hey -o csv', grpc: 'h2load (-m for max, --rps --log-file for latency)', tcp: 'bench/tcp-load.js', cpu: '/proc/<pid>/stat utime+stime' },
    paths,
    ...(runs.length > 1 ? { runs } : {}),
    tapCost,
    ratios,
    goalTargets: GOALS,
    goals,
  };
  await mkdir(dirname(opts.out), { recursive: true });
  await writeFile(opts.out, JSON.stringify(record, null, 2) + '\n');
  console.log(`\nwrote ${opts.out}`);
  return Object.values(paths).some((r) => r.error) ? 1 : 0;
}

/** Each figure of each path as the median over the runs that measured the path (an error only if all failed). */
function medianPaths(runs) {
  const out = {};
  for (const name of Object.keys(runs[0])) {
    const done = runs.map((r) => r[name]).filter((r) => r && !r.error && !r.skipped);
    out[name] = done.length ? { ...median(done), runs: done.length } : runs.map((r) => r[name]).find((r) => r?.error) ?? runs[0][name];
  }
  return out;
}

function median(values) {
  const first = values[0];
  if (typeof first === 'number') {
    const xs = values.filter((v) => typeof v === 'number' && !Number.isNaN(v)).sort((a, b) => a - b);
    return xs.length ? xs[Math.floor((xs.length - 1) / 2)] : first;
  }
  if (Array.isArray(first)) return first.map((_, i) => median(values.map((v) => v?.[i])));
  if (first && typeof first === 'object') {
    const o = {};
    for (const k of Object.keys(first)) o[k] = median(values.map((v) => v?.[k]));
    return o;
  }
  return first;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(`bench: ${err.message}`);
} finally {
  await cleanup();
}
process.exitCode = code;
