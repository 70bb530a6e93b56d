#!/usr/bin/env node
// A/B of two builds of the mesh on a busy machine: both hops are set up side by side, then loaded in
// turns (A, B, A, B, …) at a fixed rate, so other load on the machine falls on both alike. Reports
// each round's CPU per request of both sidecars (/proc ticks) and p50, and the medians.
//   node bench/ab.js --b /path/to/other/checkout [--a .] [--rounds 5] [--duration 5] [--rate 1000] [--mode http|grpc|tcp]
// --mode tcp moves bulk TCP (4 connections at full speed) through an upstream listener: CPU per MB instead of per request.
// --a-env / --b-env KEY=VALUE (repeatable) set the environment of one side's mesh, e.g. the same checkout twice with
// --b-env MESH_SIDECAR_NODE_FLAGS=--lite-mode measures a V8 flag.
import { parseArgs } from 'node:util';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import { installSignalHandlers, cleanup, readRss } from './procs.js';
import { setupMesh } from './mesh.js';
import { heyLatency, h2loadGrpc, wrkThroughput, tcpBulk, cpuMeter, rssSampler } from './load.js';

const benchDir = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    a: { type: 'string', default: resolve(benchDir, '..') },
    b: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '5' },
    rate: { type: 'string', default: '1000' },
    workers: { type: 'string', default: '10' },
    mode: { type: 'string', default: 'http' },
    'a-env': { type: 'string', multiple: true, default: [] },
    'b-env': { type: 'string', multiple: true, default: [] },
  },
});
if (!values.b) {
  console.error('usage: node bench/ab.js --b <other checkout, built> [--a <checkout>] [--a-env K=V] [--b-env K=V] [--rounds n] [--duration s] [--rate n] [--mode http|grpc|tcp]');
  process.exit(2);
}
const rounds = Number(values.rounds);
const durationS = Number(values.duration);
const rate = Number(values.rate);
const workers = Number(values.workers);
const mode = values.mode;
if (!['http', 'grpc', 'tcp'].includes(mode)) {
  console.error(`--mode takes http, grpc or tcp, got '${mode}'`);
  process.exit(2);
}
const script = join(benchDir, mode === 'grpc' ? 'grpc-server.js' : mode === 'tcp' ? 'tcp-server.js' : 'server.js');
/** What CPU is divided by: requests, or MB moved for bulk TCP. */
const unit = mode === 'tcp' ? 'MB' : 'req';

/** KEY=VALUE strings as an object; a malformed one is an error. */
function envOf(list) {
  return Object.fromEntries(list.map((kv) => {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Error(`--a-env/--b-env take KEY=VALUE, got '${kv}'`);
    return [kv.slice(0, eq), kv.slice(eq + 1)];
  }));
}
const envs = { A: envOf(values['a-env']), B: envOf(values['b-env']) };

async function load(t, seconds) {
  if (mode === 'tcp') {
    const r = await tcpBulk({ target: t.url, connections: 4, warmupS: 0, durationS: seconds });
    return { n: r.allBytes / 1e6, p50: 0, p99: 0 };
  }
  if (mode === 'grpc') {
    const r = await h2loadGrpc({ url: t.url, host: t.host, clients: workers, rate, durationS: seconds });
    return { n: r.requests, p50: r.latency.p50, p99: r.latency.p99 };
  }
  const r = await heyLatency({ url: t.url, host: t.host, rate, workers, durationS: seconds });
  return { n: r.samples, p50: r.p50, p99: r.p99 };
}

const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

async function main() {
  installSignalHandlers();
  const builds = { A: resolve(values.a), B: resolve(values.b) };
  const targets = {};
  for (const [k, root] of Object.entries(builds)) {
    targets[k] = await setupMesh({ repoRoot: root, serverScript: script, log: (m) => console.error(`[${k}] ${m}`), mode, extraEnv: envs[k] });
  }
  const rssIdle = Object.fromEntries(Object.entries(targets).map(([k, t]) => [k, t.proxies.map((p) => readRss(p.pid)?.rssMB.toFixed(1))]));
  // Warm-up: a burst at full speed gets the hot path optimized, as a long-running sidecar's is.
  for (const t of Object.values(targets)) {
    if (mode === 'grpc') await h2loadGrpc({ url: t.url, host: t.host, clients: 4, streams: 8, durationS: 3 });
    else if (mode === 'tcp') await load(t, 3);
    else await wrkThroughput({ url: t.url, host: t.host, connections: 32, durationS: 3 });
    await load(t, 2);
  }
  const results = { A: [], B: [] };
  for (let i = 0; i < rounds; i++) {
    for (const k of i % 2 ? ['B', 'A'] : ['A', 'B']) {
      const t = targets[k];
      const meter = await cpuMeter(t.proxies);
      const r = await load(t, durationS);
      const c = meter.stop();
      const row = { cpuUs: (c.totalS * 1e6) / r.n, each: c.each.map((e) => (e.cpuS * 1e6) / r.n), p50: r.p50, p99: r.p99, load: loadavg()[0] };
      results[k].push(row);
      console.error(`round ${i + 1} ${k}: ${row.cpuUs.toFixed(0)} µs/${unit} (client ${row.each[0].toFixed(0)}, server ${row.each[1].toFixed(0)}), p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, load ${row.load.toFixed(2)}`);
    }
  }
  // Then each at its maximum for a while (wrk, or h2load with calls in flight): the peak RSS under load.
  const peak = {};
  const maxRps = {};
  for (const k of ['A', 'B']) {
    const t = targets[k];
    const sampler = rssSampler(t.proxies);
    maxRps[k] = mode === 'tcp'
      ? (await load(t, durationS * 2)).n / (durationS * 2)
      : mode === 'grpc'
      ? (await h2loadGrpc({ url: t.url, host: t.host, clients: 4, streams: 8, durationS: durationS * 2 })).rps
      : (await wrkThroughput({ url: t.url, host: t.host, connections: 32, durationS: durationS * 2 })).rps;
    peak[k] = sampler.stop().map((p) => p.rssMB.toFixed(1));
  }
  for (const k of ['A', 'B']) {
    const rs = results[k];
    const rss = targets[k].proxies.map((p) => readRss(p.pid)?.rssMB.toFixed(1));
    console.log(`${k} ${builds[k]}${Object.keys(envs[k]).length ? ` (${values[`${k.toLowerCase()}-env`].join(' ')})` : ''}: median CPU ${median(rs.map((r) => r.cpuUs)).toFixed(0)} µs/${unit} (client ${median(rs.map((r) => r.each[0])).toFixed(0)}, server ${median(rs.map((r) => r.each[1])).toFixed(0)}), p50 ${median(rs.map((r) => r.p50)).toFixed(2)} ms, p99 ${median(rs.map((r) => r.p99)).toFixed(2)} ms; RSS idle ${rssIdle[k].join('/')} MB, peak at max ${peak[k].join('/')} MB (${Math.round(maxRps[k])} ${unit}/s), after ${rss.join('/')} MB`);
  }
}

let code = 1;
try {
  await main();
  code = 0;
} catch (err) {
  console.error(`ab: ${err.message}`);
} finally {
  await cleanup();
}
process.exitCode = code;
