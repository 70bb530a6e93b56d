// Load generators: wrk for maximum throughput, hey for latency at a fixed request rate.
import { runCommand, readRss, sleep } from './procs.js';

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
  lat.sort((a, b) => a - b);
  // hey leaves failed requests out of its CSV, and its pacing skips ticks when a worker is still
  // waiting: either shows up as a shortfall against the target rate.
  const expected = rate * durationS;
  return {
    samples: lat.length,
    achievedRps: lat.length / durationS,
    missing: Math.max(0, Math.round(expected - lat.length)),
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

/** Warm-up, max throughput, warm-up, latency at fixed rate; RSS of the proxies sampled throughout. */
export async function measurePath(target, opts, log) {
  const { url, host, proxies = [] } = target;
  const sampler = rssSampler(proxies);
  try {
    log(`warm-up ${opts.warmupS}s`);
    await wrkThroughput({ url, host, connections: opts.connections, durationS: opts.warmupS });
    log(`max throughput: wrk -c${opts.connections} ${opts.durationS}s`);
    const throughput = await wrkThroughput({ url, host, connections: opts.connections, durationS: opts.durationS });
    log(`  ${Math.round(throughput.rps)} req/s`);
    await sleep(500);
    await heyLatency({ url, host, rate: opts.rate, workers: opts.workers, durationS: opts.warmupS });
    log(`latency: hey at ${opts.rate} req/s (${opts.workers} workers) ${opts.durationS}s`);
    const latency = await heyLatency({ url, host, rate: opts.rate, workers: opts.workers, durationS: opts.durationS });
    log(`  p50 ${latency.p50.toFixed(2)} ms, p99 ${latency.p99.toFixed(2)} ms`);
    return { throughput, latency, proxies: sampler.stop() };
  } finally {
    sampler.stop();
  }
}
