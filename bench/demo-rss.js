#!/usr/bin/env node
// Memory of the local demo (every sample workload with its sidecar, and the ingress): `mesh install`
// and `mesh demo` in a temp state dir, traffic at --rate for --duration seconds, then RSS, PSS and
// private memory of each sidecar and their totals; `mesh uninstall --purge` at the end.
//   node bench/demo-rss.js [--rate 20] [--duration 20]
import { parseArgs } from 'node:util';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import { installSignalHandlers, cleanup, runCommand, makeTempDir, onCleanup, readRss, readPss, sleep, freePort } from './procs.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { rate: { type: 'string', default: '20' }, duration: { type: 'string', default: '20' } } });

function workloads(stateDir) {
  const dir = join(stateDir, 'workloads');
  return readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
}

async function main() {
  installSignalHandlers();
  const stateDir = await makeTempDir('mesh-bench-demo-');
  const env = { ...process.env, MESH_HOME: stateDir };
  const mesh = async (args, teardown = false) => {
    const r = await runCommand(process.execPath, [join(repoRoot, 'bin', 'mesh.js'), ...args, '--state-dir', stateDir], { cwd: repoRoot, env, timeoutMs: 180_000, teardown });
    if (r.code !== 0) throw new Error(`mesh ${args[0]} failed (${r.code ?? r.signal}):\n${(r.stderr || r.stdout).trim()}`);
    return r;
  };
  onCleanup(() => mesh(['uninstall', '--purge'], true).catch((err) => console.error(`[demo-rss] ${err.message}`)));
  await mesh(['install']);
  await mesh(['demo', '--rate', values.rate, '--ingress-port', String(await freePort())]);
  await sleep(Number(values.duration) * 1000);
  // Sidecars only: the traffic generator is listed too (kind process).
  const recs = workloads(stateDir).filter((r) => Number.isInteger(r.pid) && r.kind !== 'process');
  const rows = recs.map((r) => ({ instance: r.instance, ...readRss(r.pid), pssMB: readPss(r.pid) })).filter((r) => r.rssMB);
  const sum = (k) => rows.reduce((a, r) => a + r[k], 0);
  for (const r of rows) console.log(`${r.instance.padEnd(32)} RSS ${r.rssMB.toFixed(1)} MB  PSS ${r.pssMB.toFixed(1)} MB  private ${r.anonMB.toFixed(1)} MB`);
  console.log(`${rows.length} sidecars: RSS ${sum('rssMB').toFixed(0)} MB, PSS ${sum('pssMB').toFixed(0)} MB, private ${sum('anonMB').toFixed(0)} MB (load average ${loadavg()[0].toFixed(2)})`);
}

let code = 1;
try {
  await main();
  code = 0;
} catch (err) {
  console.error(`demo-rss: ${err.message}`);
} finally {
  await cleanup();
}
process.exitCode = code;
