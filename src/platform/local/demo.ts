// mesh demo: the bookinfo-style sample (productpage → details, reviews v1/v2/v3 → ratings),
// each app with its sidecar, plus the ingress and a light traffic generator.
import chalk from 'chalk';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { ensureInstalled } from './setup.js';
import { freePort, portInUse, sleep } from '../../util/net.js';
import { launchDetached, PortInUse, stopWorkloads, type WorkloadSpec } from './workloads.js';
import { recordAlive, type StateDir, type WorkloadRecord } from './state.js';
import { parsePort } from '../../util/duration.js';
import { checked, MeshError } from '../../util/errors.js';
import type { DemoFlags } from '../index.js';
import { step } from '../../ui/output.js';
import { PACKAGE_ROOT } from '../../version.js';
import { meshCmd } from '../../ui/invocation.js';
import { DEMO_APPS } from '../demo-apps.js';
import { adminCall } from './admin.js';
import type { EndpointRecord } from '../../api/types.js';

const DEMO_DIR = join(PACKAGE_ROOT, 'demo');


type DemoRecord = WorkloadRecord & { demo?: boolean };

const isDemo = (r: WorkloadRecord) => (r as DemoRecord).demo === true;

/** Runs the sample (or stops it with --down), installing the mesh first if needed. */
export async function demo(state: StateDir, f: DemoFlags): Promise<void> {
  if (f.down) {
    if (!state.workloads().some(isDemo)) return void console.log('The sample was not running.');
    await step('Stopping the sample', () => stopWorkloads(state, isDemo), (r) => `Stopped the sample (${r.length} processes)`);
    return;
  }
  const rate = Number(f.rate);
  if (!(rate >= 0 && rate <= 1000)) throw new MeshError(`rate '${f.rate}' is not a number of requests per second`, 'pass --rate 0-1000');
  await ensureInstalled(state, { trustDomain: 'cluster.local' });
  const running = state.workloads().filter((r) => isDemo(r) && recordAlive(r));
  const ingress = running.find((r) => r.kind === 'ingress');
  if (running.length && ingress) {
    console.log(`The sample is already running: ${chalk.bold(`http://${ingress.outbound}/productpage`)}`);
    return;
  }
  if (running.length) await stopWorkloads(state, isDemo);
  const ingressPort = await pickIngressPort(f.ingressPort);
  try {
    await step('Starting details, ratings, reviews v1 v2 v3 and productpage with their sidecars', () => Promise.all(DEMO_APPS.map(async (a) => {
      // The app ports are ours to pick: one another process took in the meantime is picked again (a few times).
      for (let tries = 1; ; tries++) {
        const spec: WorkloadSpec = {
          kind: 'workload', service: a.service, version: a.version, namespace: 'default', appPort: await freePort(),
          command: [process.execPath, join(DEMO_DIR, a.script)], demo: true, accessLog: f.accessLog, traceCollector: f.traceCollector,
          ...(a.appProtocol ? { appProtocol: a.appProtocol } : {}),
        };
        try {
          return await launchDetached(state, spec);
        } catch (err) {
          if (!(err instanceof PortInUse) || tries === 3) throw err;
        }
      }
    })), () => 'Started details, ratings, reviews v1 v2 v3 and productpage, each with its sidecar');
    const ing = await step('Starting the ingress', () => launchDetached(state, {
      kind: 'ingress', service: 'ingress', version: 'v1', namespace: 'default', ingressPort, defaultService: 'productpage', demo: true,
      accessLog: f.accessLog, traceCollector: f.traceCollector,
    }), (r) => `Ingress listening on http://${r.rec.outbound}`);
    const url = `http://${ing.rec.outbound}/productpage`;
    // Every app joins its service first, so the probe through the ingress fails on nothing still starting
    // (a failed probe would show in `mesh stat` as the ingress's own failure).
    await step('Waiting for the product page', async () => { await waitForEndpoints(state); await waitForPage(url); }, () => 'The product page answers through the mesh');
    if (f.traffic && rate > 0) startTraffic(state, url, rate);
    const next: [string, string][] = [
      ['workloads', 'the apps and their sidecars'],
      ['stat deployments', 'success rate, RPS, latency (after ~10 s of traffic)'],
      ['edges deployments', 'who calls whom, with the identities proved'],
      ['route set reviews v1=80 v2=20', 'split reviews by version'],
      ['route set reviews v3 --match header:end-user=jason', `then sign in as jason: ${url}?u=jason`],
      ['policy default deny', 'lock it down (then allow what should pass)'],
      ['check', 'is everything healthy?'],
      ['demo --down', 'stop the sample'],
    ];
    const cmds = next.map(([c]) => meshCmd(c));
    const width = Math.max(...cmds.map((c) => c.length)) + 3;
    console.log(`
The sample is running. Open the product page:
  ${chalk.bold(url)}
Each load names the reviews version that served it (reviews-v1, -v2 or -v3), all over mutual TLS.

Next:
${cmds.map((c, i) => `  ${c.padEnd(width)}${next[i]![1]}`).join('\n')}`);
  } catch (err) {
    await stopWorkloads(state, isDemo);
    throw err;
  }
}

const DEFAULT_INGRESS_PORT = 8080;

async function pickIngressPort(flag: string | undefined): Promise<number> {
  if (flag !== undefined) return checked(() => parsePort(flag, 'ingress port', true), 'pass --ingress-port 1-65535');
  if (!(await portInUse(DEFAULT_INGRESS_PORT))) return DEFAULT_INGRESS_PORT;
  const port = await freePort();
  process.stderr.write(`${chalk.yellow('‼')} port ${DEFAULT_INGRESS_PORT} is in use by another process: the ingress listens on ${port} instead (--ingress-port picks one)\n`);
  return port;
}

/** Until the control plane lists an endpoint of every sample app (each registers once its app listens). */
async function waitForEndpoints(state: StateDir, timeoutMs = 60_000): Promise<void> {
  const want = DEMO_APPS.map((a) => `${a.service}/${a.version}`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const eps = await adminCall<EndpointRecord[]>(state, 'GET', '/v1/endpoints');
    const have = new Set(eps.filter((e) => e.namespace === 'default' && e.port > 0).map((e) => `${e.service}/${e.version}`));
    const missing = want.filter((w) => !have.has(w));
    if (!missing.length) return;
    if (Date.now() > deadline) throw new MeshError(`${missing.join(', ')} did not join the mesh within ${timeoutMs / 1000} s`, "see the logs in the state dir's logs/ folder");
    await sleep(100);
  }
}

function waitForPage(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const once = () => new Promise<string>((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(res.statusCode === 200 ? body : ''));
    });
    req.setTimeout(3000, () => req.destroy());
    req.on('error', () => resolve(''));
  });
  return (async () => {
    while (Date.now() < deadline) {
      if (/reviews-v[123]/.test(await once())) return;
      await sleep(250);
    }
    throw new MeshError(`the product page did not answer at ${url} within ${timeoutMs / 1000} s`, "see the logs in the state dir's logs/ folder");
  })();
}

/** The traffic generator is a plain process (not meshed): it plays the users in front of the ingress. */
function startTraffic(state: StateDir, url: string, rate: number): void {
  mkdirSync(state.path('logs'), { recursive: true });
  const log = state.workloadLog('demo-traffic');
  const fd = openSync(log, 'a');
  const child = spawn(process.execPath, [join(DEMO_DIR, 'traffic.js')], {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: { ...process.env, TARGET_URL: url, RATE: String(rate), MESH_DEMO_TRAFFIC: '1' },
  });
  closeSync(fd);
  child.unref();
  const rec: DemoRecord = {
    instance: 'demo-traffic', kind: 'process', service: 'traffic', namespace: 'default', version: 'v1', pid: child.pid!,
    outbound: '-', admin: '-', state: 'running', startedAt: new Date().toISOString(), log, demo: true,
  };
  state.writeWorkload(rec);
}
