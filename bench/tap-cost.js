// What tapping costs a sidecar: CPU per request of the two sidecars of one hop (client → web), from /proc ticks,
// with nobody tapping, while `mesh tap deploy/web-v1` runs (--max-rps 100), and untapped again. Run by `npm run bench`
// (its tap-cost entry, in latest.json as tapCost) or alone:
//   npm run build && node bench/tap-cost.js [requests per phase, default 20000]
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { TestMesh, MESH_BIN, request, waitFor } from '../dist/test/support/mesh.js';

const CONCURRENCY = 16;
const ticks = (pid) => {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, in 1/100 s
};

/** The three phases: requests per second and each sidecar's CPU per request (µs). */
export async function measureTapCost(n = 20000, log = (line) => console.log(line)) {
  const m = new TestMesh();
  const phases = [];
  try {
    await m.install();
    const web = await m.run('web');
    const client = await m.run('client');
    await waitFor('traffic', async () => (await request(client.outbound, { headers: { host: 'web' } })).status === 200);
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const [host, port] = client.outbound.split(':');
    const one = () => new Promise((resolve, reject) => {
      http.get({ host, port, path: '/hello', headers: { host: 'web', authorization: 'Bearer x' }, agent }, (res) => res.resume().on('end', resolve)).on('error', reject);
    });
    const phase = async (name) => {
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => { for (let i = 0; i < 200; i++) await one(); }));
      const pids = [web.pid, client.pid];
      const before = pids.map(ticks);
      const t0 = process.hrtime.bigint();
      let left = n;
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => { while (left-- > 0) await one(); }));
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const [webUs, clientUs] = pids.map((p, i) => ((ticks(p) - before[i]) * 10_000) / n);
      phases.push({ name, rps: Math.round(n / secs), webCpuUsPerRequest: Math.round(webUs), clientCpuUsPerRequest: Math.round(clientUs) });
      log(`${name.padEnd(28)} ${(n / secs).toFixed(0).padStart(6)} req/s   sidecar CPU per request: web ${webUs.toFixed(0)} µs + client ${clientUs.toFixed(0)} µs = ${(webUs + clientUs).toFixed(0)} µs`);
    };
    await phase('nobody taps');
    const tap = spawn(process.execPath, [MESH_BIN, '--state-dir', m.dir, 'tap', 'deploy/web-v1', '-o', 'json', '--max-rps', '100'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let events = 0;
    tap.stdout.on('data', (c) => (events += String(c).split('\n').length - 1));
    await waitFor('the tap to reach the proxy', async () => (await one(), events > 0), 20_000, 50);
    await phase('tapped (--max-rps 100)');
    tap.kill('SIGINT');
    await new Promise((r) => tap.on('close', r));
    // Ctrl-C closed the tap on the control plane before the CLI exited, which answers the proxy's long-poll at once;
    // the phase's warm-up requests run while that answer arrives.
    await phase('nobody taps again');
    agent.destroy();
    return { requestsPerPhase: n, concurrency: CONCURRENCY, phases };
  } finally {
    await m.cleanup();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) await measureTapCost(Number(process.argv[2] ?? 20000));
