// mesh grafana-dashboards: every panel's PromQL, run against a real Prometheus scraping a running mesh, returns data.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestMesh, request, waitFor, type WorkloadInfo } from './support/mesh.js';
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
});
