// A real Prometheus (Debian's binary) on a free loopback port, for the tests that compare with it.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { waitFor, freePort } from './mesh.js';
import { get } from './http.js';
import { start, type Started } from './process.js';

export const which = (bin: string): string => spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).stdout.trim();
export const PROMETHEUS = which('prometheus');

/** The skip reason for a suite that needs Prometheus (none under CI, which must have it). */
export const NO_PROMETHEUS = !PROMETHEUS && !process.env.CI ? 'the prometheus binary is not installed (apt-get install prometheus); CI requires it' : false;

export interface RunningPrometheus {
  url: string;
  /** An instant query's result vector. */
  query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  /** Its log so far (warnings and errors). */
  log(): string;
  stop(): Promise<void>;
}

/** Starts Prometheus on `configFile`, keeping its data under `dir`, and waits until it is ready. */
export async function startPrometheus(configFile: string, dir: string): Promise<RunningPrometheus> {
  if (!PROMETHEUS) throw new Error('prometheus must be installed when CI is set: apt-get install prometheus');
  const address = `127.0.0.1:${await freePort()}`;
  const p: Started = start(PROMETHEUS, [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=${address}`, '--log.level=warn'], { name: 'prometheus' });
  const running: RunningPrometheus = {
    url: `http://${address}`,
    async query(expr) {
      const r = await get(address, `/api/v1/query?query=${encodeURIComponent(expr)}`, { timeoutMs: 5000 });
      if (r.status !== 200) throw new Error(`Prometheus answered ${r.status} to ${expr}: ${r.body.slice(0, 300)}`);
      return (JSON.parse(r.body) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } }).data.result;
    },
    log: () => p.output().slice(-4000),
    stop: async () => void (await p.stop()),
  };
  try {
    await waitFor(`Prometheus to be ready on ${address}`, async () => {
      if (p.child.exitCode !== null) throw new Error(`prometheus exited (${p.child.exitCode})`);
      return (await get(address, '/-/ready', { timeoutMs: 5000 })).status === 200;
    }, 30_000, 250);
  } catch (err) {
    await p.stop();
    throw new Error(`${(err as Error).message}\n${running.log()}`);
  }
  return running;
}
