// The data path's clock: milliseconds on the scale of performance.now() (since the process started), without
// node:perf_hooks. The first use of `performance` loads Node's whole perf module set, ~0.3 MB of RSS per sidecar
// (issue 14); process.hrtime() costs ~5 ns more a call than performance.now(), measured.
const [S0, NS0] = process.hrtime();
const BASE = process.uptime() * 1e3;

/** Monotonic milliseconds since the process started, with sub-millisecond precision. */
export function now(): number {
  const t = process.hrtime();
  return BASE + (t[0] - S0) * 1e3 + (t[1] - NS0) / 1e6;
}

/** The wall-clock time (ms since the epoch) at which now() was 0. */
export const timeOrigin = Date.now() - now();
