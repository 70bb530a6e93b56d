// Load generators: wrk (HTTP/1.1) and h2load (gRPC) for maximum throughput, hey and h2load --rps for
// latency at a fixed rate, bench/tcp-load.js for bulk TCP; the proxies' CPU (/proc ticks) and RSS around each.
import { writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand, readRss, readPss, readCpuTicks, ticksPerSecond, makeTempDir, sleep } from './procs.js';

/** Samples VmRSS of the given pids every 250 ms while a measurement runs; keeps the maxima. */
export function rssSampler(proxies) {
  const peak = new Map(proxies.map((p) => [p.pid, 0]));
  const sample = () => {
    for (const p of proxies) {
      const r = readRss(p.pid);
      if (r) peak.set(p.pid, Math.max(peak.get(p.pid), r.rssMB));
    }
  };
  sample();
  const timer = setInterval(sample, 250);
  let result = null;
  return {
    stop() {
      if (result) return result;
      clearInterval(timer);
      sample();
      return result = proxies.map((p) => ({ name: p.name, label: p.label, pid: p.pid, rssMB: peak.get(p.pid), hwmMB: readRss(p.pid)?.hwmMB ?? null }));
    },
  };
}

/** wrk -t1 -cN: closed-loop maximum throughput. */
export async function wrkThroughput({ url, host, connections, durationS }) {
  const args = ['-t1', `-c${connections}`, `-d${durationS}s`, '--timeout', '5s', '-H', `Host: ${host}`, url];
  const { code, stdout, stderr } = await runCommand('wrk', args, { timeoutMs: (durationS + 30) * 1000 });
  if (code !== 0) throw new Error(`wrk failed (${code}): ${stderr || stdout}`);
  const num = (re) => Number(stdout.match(re)?.[1] ?? 0);
  const rps = num(/Requests\/sec:\s+([\d.]+)/);
  if (!rps) throw new Error(`could not parse wrk output:\n${stdout}`);
  const errs = stdout.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  return {
    rps,
    requests: num(/(\d+) requests in/),
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
    socketErrors: errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
  };
}

/**
 * hey with `workers` keep-alive connections, each paced to rate/workers req/s (hey's -q is per
 * worker). Percentiles come from hey's per-request CSV (0.1 ms resolution).
 */
export async function heyLatency({ url, host, rate, workers, durationS }) {
  const args = ['-z', `${durationS}s`, '-c', String(workers), '-q', String(rate / workers), '-t', '5', '-host', host, '-o', 'csv', url];
  const { code, stdout, stderr } = await runCommand('hey', args, { timeoutMs: (durationS + 30) * 1000 });
  if (code !== 0) throw new Error(`hey failed (${code}): ${stderr || stdout}`);
  const lat = [];
  let non200 = 0;
  for (const line of stdout.split('\n').slice(1)) {
    const cols = line.split(',');
    if (cols.length < 8) continue;
    lat.push(Number(cols[0]) * 1000);
    if (cols[6] !== '200') non200++;
  }
  if (!lat.length) throw new Error(`hey returned no samples:\n${stderr || stdout.slice(0, 2000)}`);
  // hey leaves failed requests out of its CSV, and its pacing skips ticks when a worker is still
  // waiting: either shows up as a shortfall against the target rate.
  return percentiles(lat, rate, durationS, non200);
}

/**
 * h2load over h2c with a gRPC unary call per request (POST, application/grpc, one small message).
 * Closed loop (clients × streams in flight) when rate is not given; with rate, each client is paced
 * to rate/clients calls per second and the per-request log gives the percentiles.
 */
export async function h2loadGrpc({ url, host, clients, streams, rate, durationS }) {
  const dir = await makeTempDir('mesh-bench-h2load-');
  const body = join(dir, 'request.bin');
  await writeFile(body, GRPC_REQUEST);
  const log = join(dir, 'requests.tsv');
  const args = ['-D', String(durationS), '-c', String(clients),
    '-m', String(rate ? 1 : streams), ...(rate ? ['--rps', String(rate / clients), '--log-file', log] : []),
    '-d', body, '-H', 'content-type: application/grpc', '-H', 'te: trailers', '-H', `:authority: ${host}`,
    `${url.replace(/\/$/, '')}/bench.Bench/Unary`];
  const { code, stdout, stderr } = await runCommand('h2load', args, { timeoutMs: (durationS + 30) * 1000 });
  if (code !== 0) throw new Error(`h2load failed (${code}): ${stderr || stdout}`);
  const m = stdout.match(/requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/);
  if (!m) throw new Error(`could not parse h2load output:\n${stdout}`);
  const succeeded = Number(m[4]);
  const out = { rps: succeeded / durationS, requests: succeeded, failed: Number(m[5]) + Number(m[6]) };
  if (!rate) return out;
  // Columns: start (µs since epoch), status, µs to the end of the response.
  const lat = [];
  let non200 = 0;
  for (const line of (await readFile(log, 'utf8')).split('\n')) {
    const cols = line.split('\t');
    if (cols.length < 3) continue;
    lat.push(Number(cols[2]) / 1000);
    if (cols[1] !== '200') non200++;
  }
  if (!lat.length) throw new Error(`h2load logged no requests:\n${stdout}`);
  return { ...out, latency: percentiles(lat, rate, durationS, non200) };
}

// A gRPC request message: flag 0, length 16, a bytes field of 14 bytes.
const GRPC_REQUEST = Buffer.concat([Buffer.from([0, 0, 0, 0, 16, 0x0a, 14]), Buffer.alloc(14, 'y')]);

/** bench/tcp-load.js: bytes/s from the server to `connections` clients through the path. */
export async function tcpBulk({ target, connections, warmupS, durationS }) {
  const script = new URL('./tcp-load.js', import.meta.url).pathname;
  const { code, stdout, stderr } = await runCommand(process.execPath, [script, target, String(connections), String(warmupS), String(durationS)],
    { timeoutMs: (durationS + warmupS + 30) * 1000 });
  const line = stdout.trim().split('\n').pop();
  let r;
  try { r = JSON.parse(line); } catch { throw new Error(`tcp-load failed (${code}): ${stderr || stdout}`); }
  if (code !== 0 || r.error) throw new Error(`tcp-load failed: ${r.error ?? stderr}`);
  return r;
}

function percentiles(lat, rate, durationS, non200) {
  lat.sort((a, b) => a - b);
  return {
    samples: lat.length,
    achievedRps: lat.length / durationS,
    missing: Math.max(0, Math.round(rate * durationS - lat.length)),
    non200,
    p50: pct(lat, 50),
    p90: pct(lat, 90),
    p99: pct(lat, 99),
    p999: pct(lat, 99.9),
    max: lat[lat.length - 1],
    mean: lat.reduce((a, b) => a + b, 0) / lat.length,
  };
}

/** Nearest-rank percentile of a sorted array. */
function pct(sorted, p) {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** CPU seconds the proxies spend between start() and stop() (utime + stime from /proc, 10 ms ticks). */
export async function cpuMeter(proxies) {
  const hz = await ticksPerSecond();
  const read = () => proxies.map((p) => readCpuTicks(p.pid) ?? NaN);
  let t0 = read();
  return {
    restart() { t0 = read(); },
    /** Per proxy and in total, in seconds. */
    stop() {
      const t1 = read();
      const each = proxies.map((p, i) => ({ label: p.label, cpuS: (t1[i] - t0[i]) / hz }));
      return { each, totalS: each.reduce((a, e) => a + e.cpuS, 0) };
    },
  };
}

/** CPU µs per unit (request, MB) of all proxies together and of each, from a meter's reading. */
function perUnit(cpu, units) {
  if (!units) return null;
  return { total: (cpu.totalS * 1e6) / units, each: Object.fromEntries(cpu.each.map((e) => [e.label, (e.cpuS * 1e6) / units])) };
}

/** RSS, private (anon) memory and PSS of each proxy now, in MB. */
function memNow(proxies) {
  return Object.fromEntries(proxies.map((p) => {
    const r = readRss(p.pid);
    return [p.label, { rssMB: r?.rssMB ?? null, anonMB: r?.anonMB ?? null, pssMB: readPss(p.pid) }];
  }));
}

/**
 * Idle RSS, then per mode: warm-up, max throughput, warm-up, the fixed rate (latency), each with the
 * proxies' CPU per request; RSS sampled throughout (peak) and once more after the load.
 */
export async function measurePath(target, opts, log) {
  const { url, host, proxies = [], mode = 'http' } = target;
  const idle = memNow(proxies);
  const sampler = rssSampler(proxies);
  const cpu = await cpuMeter(proxies);
  try {
    let throughput;
    let latency;
    let cpuAtMax = null;
    let cpuAtRate = null;
    if (mode === 'tcp') {
      log(`bulk TCP: ${opts.tcpConnections} connections, ${opts.warmupS}s warm-up, ${opts.durationS}s`);
      cpu.restart();
      throughput = await tcpBulk({ target: url, connections: opts.tcpConnections, warmupS: opts.warmupS, durationS: opts.durationS });
      // Per MB moved, warm-up included on both sides (the meter runs across it, allBytes counts it).
      const c = cpu.stop();
      const mb = throughput.allBytes / 1e6;
      cpuAtMax = { cpuS: c.totalS, perMB: perUnit(c, mb) };
      log(`  ${(throughput.bytesPerSec / 1e6).toFixed(0)} MB/s`);
    } else if (mode === 'grpc') {
      log(`warm-up ${opts.warmupS}s`);
      await h2loadGrpc({ url, host, clients: opts.grpcClients, streams: opts.grpcStreams, durationS: opts.warmupS });
      log(`max throughput: h2load -c${opts.grpcClients} -m${opts.grpcStreams} ${opts.durationS}s`);
      cpu.restart();
      throughput = await h2loadGrpc({ url, host, clients: opts.grpcClients, streams: opts.grpcStreams, durationS: opts.durationS });
      let c = cpu.stop();
      cpuAtMax = { cpuS: c.totalS, perRequest: perUnit(c, throughput.requests) };
      log(`  ${Math.round(throughput.rps)} calls/s`);
      await sleep(500);
      await h2loadGrpc({ url, host, clients: opts.workers, rate: opts.rate, durationS: opts.warmupS });
      log(`latency: h2load at ${opts.rate} calls/s (${opts.workers} clients) ${opts.durationS}s`);
      cpu.restart();
      const fixed = await h2loadGrpc({ url, host, clients: opts.workers, rate: opts.rate, durationS: opts.durationS });
      c = cpu.stop();
      latency = fixed.latency;
      cpuAtRate = { cpuS: c.totalS, perRequest: perUnit(c, fixed.requests) };
      log(`  p50 ${latency.p50.toFixed(2)} ms, p99 ${latency.p99.toFixed(2)} ms`);
    } else {
      log(`warm-up ${opts.warmupS}s`);
      await wrkThroughput({ url, host, connections: opts.connections, durationS: opts.warmupS });
      log(`max throughput: wrk -c${opts.connections} ${opts.durationS}s`);
      cpu.restart();
      throughput = await wrkThroughput({ url, host, connections: opts.connections, durationS: opts.durationS });
      let c = cpu.stop();
      cpuAtMax = { cpuS: c.totalS, perRequest: perUnit(c, throughput.requests) };
      log(`  ${Math.round(throughput.rps)} req/s`);
      await sleep(500);
      await heyLatency({ url, host, rate: opts.rate, workers: opts.workers, durationS: opts.warmupS });
      log(`latency: hey at ${opts.rate} req/s (${opts.workers} workers) ${opts.durationS}s`);
      cpu.restart();
      latency = await heyLatency({ url, host, rate: opts.rate, workers: opts.workers, durationS: opts.durationS });
      c = cpu.stop();
      cpuAtRate = { cpuS: c.totalS, perRequest: perUnit(c, latency.samples) };
      log(`  p50 ${latency.p50.toFixed(2)} ms, p99 ${latency.p99.toFixed(2)} ms`);
    }
    if (cpuAtRate?.perRequest) log(`  CPU per request at ${opts.rate}/s: ${cpuAtRate.perRequest.total.toFixed(0)} µs (all proxies)`);
    const peak = sampler.stop();
    await sleep(1000);
    const after = memNow(proxies);
    return {
      mode,
      throughput,
      latency,
      cpuAtMax,
      cpuAtRate,
      proxies: peak.map((p) => ({
        ...p,
        rssIdleMB: idle[p.label].rssMB, pssIdleMB: idle[p.label].pssMB, anonIdleMB: idle[p.label].anonMB,
        rssAfterMB: after[p.label].rssMB, pssAfterMB: after[p.label].pssMB, anonAfterMB: after[p.label].anonMB,
      })),
    };
  } finally {
    sampler.stop();
  }
}
