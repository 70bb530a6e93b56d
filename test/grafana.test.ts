// mesh grafana-dashboards: every panel's PromQL, run against a real Prometheus scraping a running mesh, returns data;
// and mesh dashboard --prometheus reads its figures from that Prometheus.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { TestMesh, MESH_BIN, request, waitFor, type WorkloadInfo } from './support/mesh.js';
import { StateDir } from '../src/platform/local/state.js';
import { adminClient } from '../src/platform/local/control.js';
import { NO_PROMETHEUS, startPrometheus, type RunningPrometheus } from './support/prometheus.js';

describe('mesh grafana-dashboards', { skip: NO_PROMETHEUS }, () => {
  const m = new TestMesh();
  const dir = mkdtempSync(join(tmpdir(), 'mesh-grafana-'));
  let prom: RunningPrometheus;
  let stop = false;
  let traffic: Promise<unknown>;

  before(async () => {
    await m.install(['--scrape-interval', '1s']);
    const [, client, intruder] = await Promise.all([m.run('web'), m.run('client'), m.run('intruder')]);
    assert.equal((await m.cli(['policy', 'default', 'deny'])).code, 0);
    assert.equal((await m.cli(['policy', 'allow', '--from', 'client', '--to', 'web'])).code, 0);
    const send = async (w: WorkloadInfo) => {
      while (!stop) {
        await request(w.outbound, { path: '/hello', headers: { host: 'web' } }).catch(() => {});
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    traffic = Promise.all([send(client!), send(intruder!)]);
    const cfg = await m.cli(['prometheus-config', '--scrape-interval', '1s']);
    assert.equal(cfg.code, 0, cfg.stderr);
    writeFileSync(join(dir, 'prometheus.yml'), cfg.stdout);
    prom = await startPrometheus(join(dir, 'prometheus.yml'), dir);
  });
  after(async () => {
    stop = true;
    await traffic;
    await prom?.stop();
    rmSync(dir, { recursive: true, force: true });
    await m.cleanup();
  });

  it('writes five dashboards whose every panel returns data from Prometheus', async () => {
    const out = join(dir, 'dashboards');
    const r = await m.cli(['grafana-dashboards', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const files = readdirSync(out).sort();
    assert.deepEqual(files, ['mesh-authorization.json', 'mesh-proxy-resources.json', 'mesh-route.json', 'mesh-top-line.json', 'mesh-workload.json']);
    const panels = files.flatMap((f) => (JSON.parse(readFileSync(join(out, f), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] }).panels
      .map((p) => ({ where: `${f}: ${p.title}`, expr: p.targets[0]!.expr })));
    assert.ok(panels.length >= 17);
    // Grafana's variables at "All", its rate interval at a few scrapes.
    const concrete = (e: string) => e.replace(/\$(namespace|deployment|service)/g, '.*').replace(/\$__rate_interval/g, '10s');
    const empty = new Set(panels.map((p) => p.where));
    await waitFor('every panel to return data', async () => {
      for (const p of panels) if (empty.has(p.where) && (await prom.query(concrete(p.expr))).length > 0) empty.delete(p.where);
      return empty.size === 0;
    }, 60_000, 1000).catch((err) => assert.fail(`${(err as Error).message}; no data: ${[...empty].join(' | ')}`));
  });

  it('mesh dashboard --prometheus computes stat, edges, authz and certificate expiry with PromQL', async () => {
    const dash = spawn(process.execPath, [MESH_BIN, '--state-dir', m.dir, 'dashboard', '--port', '0', '--prometheus', prom.url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    dash.stdout!.on('data', (c) => (out += c));
    dash.stderr!.on('data', (c) => (out += c));
    try {
      const url = new URL((await waitFor('the dashboard URL', () => /http:\/\/127\.0\.0\.1:\d+\/\?token=\S+/.exec(out)?.[0], 20_000))!);
      assert.match(out, /figures from Prometheus at http:\/\/127\.0\.0\.1:\d+/);
      const cookie = (await fetch(url, { redirect: 'manual' })).headers.get('set-cookie')!.split(';')[0]!;
      const api = async <T>(path: string): Promise<T> => {
        const r = await fetch(new URL(`/api/${path}`, url.origin), { headers: { cookie } });
        assert.equal(r.status, 200, `${path}: ${out}`);
        return r.json() as Promise<T>;
      };
      const stat = await waitFor('web-v1 with traffic, from Prometheus', async () => {
        const s = await api<{ source: string; rows: { name: string; rps: number | null }[] }>('stat?resource=deployment&all=true&window=30s');
        return s.rows.some((x) => x.name === 'web-v1' && (x.rps ?? 0) > 0) ? s : undefined;
      }, 60_000, 1000);
      assert.match(stat!.source, /Prometheus at http:\/\/127\.0\.0\.1/);
      const edges = await api<{ edges: { src: string; dst: string }[] }>('edges?resource=deployment&all=true&window=30s');
      assert.ok(edges.edges.some((e) => e.src === 'client-v1' && e.dst === 'web-v1'), JSON.stringify(edges));
      const authz = await waitFor('a denial under default deny', async () => {
        const a = await api<{ rows: { rule: string; deniedRps: number }[] }>('authz?namespace=default&deployment=web-v1&window=30s');
        return a.rows.some((x) => x.rule === 'default deny' && x.deniedRps > 0) ? a : undefined;
      }, 60_000, 1000);
      assert.ok(authz!.rows.some((x) => x.rule.startsWith('rule 1 of policy')));
      const id = await api<{ proxyExpiry: Record<string, number> }>('identity-summary');
      const pods = Object.keys(id.proxyExpiry);
      assert.ok(pods.some((p) => p.startsWith('web-')) && Object.values(id.proxyExpiry).every((t) => t > Date.now()), JSON.stringify(id.proxyExpiry));
    } finally {
      dash.kill('SIGTERM');
    }
  });

  it("the control plane tells each proxy's certificate expiry from its window", async () => {
    const state = new StateDir(m.dir);
    const c = adminClient(state);
    try {
      const r = await c.request<{ expiry: Record<string, number> }>('GET', '/v1/identity/proxies', undefined, { bearer: state.adminToken() });
      assert.equal(r.status, 200);
      const pods = Object.keys(r.body.expiry);
      for (const w of ['web-', 'client-', 'intruder-']) assert.ok(pods.some((p) => p.startsWith(w)), pods.join(' '));
      // Workload certificates live 24 h by default.
      for (const t of Object.values(r.body.expiry)) assert.ok(t > Date.now() + 3600_000 && t < Date.now() + 25 * 3600_000, String(t));
    } finally {
      c.close();
    }
  });
});
