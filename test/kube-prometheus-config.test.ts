// mesh prometheus-config --platform kubernetes: a pod-discovery scrape job (Linkerd's linkerd-proxy job, for mesh's
// proxy container and admin port) whose relabelling gives the targets the labels the local config gives them.
// Checked three ways: a golden file, promtool, and a real Prometheus applying the relabel rules to the targets pod
// discovery would produce (Debian's Prometheus is built without Kubernetes discovery, so they are given statically).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import type { FakeApiServer } from './support/kube/fake-api-server.js';
import { assertOneLineError, mesh, waitFor, type CliResult } from './support/mesh.js';
import { NO_PROMETHEUS, startPrometheus, which, type RunningPrometheus } from './support/prometheus.js';
import { golden } from './support/golden.js';
import { injectOpts } from './support/kube-fixtures.js';
import { startCliCluster, type CliCluster } from './support/kube-mesh.js';
import { ADMIN_PORT_NAME, renderKubePrometheusConfig } from '../src/platform/kubernetes/prometheus.js';
import { injectObject } from '../src/platform/kubernetes/inject.js';
import { PROXY_CONTAINER, PROXY_PORTS } from '../src/platform/kubernetes/names.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const PROMTOOL = which('promtool');

/** The rendered config with pod discovery swapped for static targets carrying what pod discovery would set. */
function withStaticTargets(yaml: string, targets: { targets: string[]; labels: Record<string, string> }[]): string {
  const cfg = parse(yaml) as Obj;
  const job = cfg.scrape_configs[0];
  delete job.kubernetes_sd_configs;
  job.static_configs = targets;
  return stringify(cfg);
}

describe('mesh prometheus-config on kubernetes', () => {
  let server: FakeApiServer;
  let dir: string;
  let cluster: CliCluster;
  const k = (args: string[]): Promise<CliResult> => cluster.run(args);
  const rendered = () => renderKubePrometheusConfig({ scrapeIntervalMs: 10_000, trustDomain: 'cluster.local' });

  before(async () => {
    cluster = await startCliCluster('mesh-kprom-');
    ({ server, dir } = cluster);
  });
  after(async () => {
    await cluster?.close();
  });

  it('renders the pod-discovery job as reviewed', () => golden('kube-prometheus-config.txt', rendered()));

  it('keeps exactly the port inject gives the proxy container for its admin listener', () => {
    const pod = injectObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'app', image: 'x' }] } }, injectOpts(), []) as Obj;
    const proxy = (pod.spec.initContainers as Obj[]).find((c) => c.name === PROXY_CONTAINER)!;
    assert.ok((proxy.ports as Obj[]).some((p) => p.name === ADMIN_PORT_NAME && p.containerPort === PROXY_PORTS.admin));
    const job = (parse(rendered()) as Obj).scrape_configs[0];
    assert.deepEqual(job.kubernetes_sd_configs, [{ role: 'pod' }]);
    assert.deepEqual(job.relabel_configs[0], {
      source_labels: ['__meta_kubernetes_pod_container_name', '__meta_kubernetes_pod_container_port_name'],
      separator: ';', regex: `${PROXY_CONTAINER};${ADMIN_PORT_NAME}`, action: 'keep',
    });
    assert.equal(job.honor_labels, false);
  });

  it('takes the trust domain from the installed mesh-config, and --trust-domain over it', async () => {
    server.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'mesh-system' } });
    server.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'mesh-config', namespace: 'mesh-system' }, data: { trustDomain: 'example.org' } });
    const r = await k(['prometheus-config', '--scrape-interval', '15s']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /replacement: "spiffe:\/\/example\.org\/ns\/\$1\/sa\/\$2"/);
    assert.match(r.stdout, /scrape_interval: 15s/);
    const flag = await k(['prometheus-config', '--trust-domain', 'other.test']);
    assert.equal(flag.code, 0, flag.stderr);
    assert.match(flag.stdout, /spiffe:\/\/other\.test\/ns/);
  });

  it('refuses --file-sd and a bad trust domain with one line and a hint', async () => {
    assertOneLineError(await k(['prometheus-config', '--file-sd', join(dir, 't.json')]), /--file-sd is for the local platform — .*kubernetes_sd/);
    assertOneLineError(await k(['prometheus-config', '--trust-domain', 'Not_A Domain']), /trust domain 'Not_A Domain' is not valid/);
    assertOneLineError(await k(['prometheus-config', '--scrape-interval', 'soon']), /scrape interval/);
  });

  describe('checked by promtool', { skip: !PROMTOOL && 'promtool is not installed (apt-get install prometheus ships it)' }, () => {
    it('accepts the rendered file', (t) => {
      const file = join(dir, 'kube-prometheus.yml');
      writeFileSync(file, rendered());
      const r = spawnSync(PROMTOOL, ['check', 'config', file], { encoding: 'utf8', timeout: 30_000 });
      if (r.status !== 0 && /field kubernetes_sd_configs not found/.test(r.stdout + r.stderr)) {
        t.skip('this promtool is built without Kubernetes service discovery (as Debian\'s is); its relabel rules are checked below');
        return;
      }
      assert.equal(r.status, 0, r.stdout + r.stderr);
    });

    it('accepts its relabel rules (with discovery swapped for a static target)', () => {
      const file = join(dir, 'kube-prometheus-static.yml');
      writeFileSync(file, withStaticTargets(rendered(), [{ targets: ['127.0.0.1:4191'], labels: {} }]));
      const r = spawnSync(PROMTOOL, ['check', 'config', file], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 0, r.stdout + r.stderr);
    });
  });

  describe('applied by a real Prometheus', { skip: NO_PROMETHEUS }, () => {
    let prom: RunningPrometheus | undefined;
    let metrics: http.Server;

    before(async () => {
      // A proxy's admin port as Prometheus scrapes it; the proxy names its deployment after its ServiceAccount.
      metrics = http.createServer((req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end('# TYPE request_total counter\nrequest_total{direction="inbound",namespace="default",deployment="reviews-sa-v2",pod="reviews-v2-abc"} 5\n');
      });
      await new Promise<void>((r) => metrics.listen(0, '127.0.0.1', r));
      const admin = `127.0.0.1:${(metrics.address() as AddressInfo).port}`;
      // What pod discovery gives each container port of three pods: meshed reviews-v2 (proxy and app ports),
      // meshed details without a version label, and a finished Job pod.
      const pod = (name: string, labels: Record<string, string>, phase = 'Running') => ({
        __meta_kubernetes_namespace: 'default', __meta_kubernetes_pod_name: name, __meta_kubernetes_pod_phase: phase,
        __meta_kubernetes_pod_annotation_mesh_io_service_account: `${labels.app}-sa`,
        ...Object.fromEntries(Object.entries(labels).map(([k2, v]) => [`__meta_kubernetes_pod_label_${k2}`, v])),
      });
      const port = (container: string, name: string) => ({ __meta_kubernetes_pod_container_name: container, __meta_kubernetes_pod_container_port_name: name });
      const targets = [
        { targets: [admin], labels: { ...pod('reviews-v2-abc', { app: 'reviews', version: 'v2' }), ...port(PROXY_CONTAINER, ADMIN_PORT_NAME) } },
        { targets: [admin], labels: { ...pod('reviews-v2-abc', { app: 'reviews', version: 'v2' }), ...port(PROXY_CONTAINER, 'mesh-inbound') } },
        { targets: [admin], labels: { ...pod('reviews-v2-abc', { app: 'reviews', version: 'v2' }), ...port('app', 'http') } },
        { targets: [admin], labels: { ...pod('details-7d9', { app: 'details' }), ...port(PROXY_CONTAINER, ADMIN_PORT_NAME) } },
        { targets: [admin], labels: { ...pod('migrate-x1', { app: 'migrate' }, 'Succeeded'), ...port(PROXY_CONTAINER, ADMIN_PORT_NAME) } },
      ];
      const file = join(dir, 'prometheus.yml');
      writeFileSync(file, withStaticTargets(renderKubePrometheusConfig({ scrapeIntervalMs: 1000, trustDomain: 'cluster.local' }), targets));
      prom = await startPrometheus(file, dir);
    });
    after(async () => {
      await prom?.stop();
      await new Promise((r) => metrics?.close(r));
    });

    const query = async (expr: string) => (await prom!.query(expr)).map((x) => x.metric);

    it('keeps one target per running meshed pod, labelled as on the local platform', async () => {
      const up = await waitFor('both proxies scraped', async () => {
        const m = await query('up{job="mesh-proxy"} == 1');
        return m.length === 2 ? m : undefined;
      }, 30_000, 250).catch((err: Error) => { throw new Error(`${err.message}\n${prom!.log()}`); });
      const labels = up!.map(({ __name__: _n, instance: _i, job: _j, ...l }) => l).sort((a, b) => a.pod!.localeCompare(b.pod!));
      assert.deepEqual(labels, [
        { namespace: 'default', pod: 'details-7d9', service: 'details', deployment: 'details-default', role: 'sidecar', identity: 'spiffe://cluster.local/ns/default/sa/details-sa' },
        { namespace: 'default', pod: 'reviews-v2-abc', service: 'reviews', deployment: 'reviews-v2', role: 'sidecar', identity: 'spiffe://cluster.local/ns/default/sa/reviews-sa' },
      ]);
    });

    it("puts the pod's labels on the proxy's series, its own as exported_*", async () => {
      const series = await waitFor('request_total scraped', async () => {
        const m = await query('request_total{pod="reviews-v2-abc"}');
        return m.length ? m : undefined;
      }, 30_000, 250);
      assert.equal(series![0]!.deployment, 'reviews-v2');
      assert.equal(series![0]!.exported_deployment, 'reviews-sa-v2');
      assert.equal(series![0]!.identity, 'spiffe://cluster.local/ns/default/sa/reviews-sa');
    });

    it("answers 'mesh stat --prometheus' unchanged", async () => {
      const r = await mesh(['stat', 'deployments', '-o', 'json', '--prometheus', prom!.url], { env: { HOME: join(dir, 'home'), MESH_PLATFORM: '' }, timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      const rows = JSON.parse(r.stdout) as { name: string; meshed: string }[];
      assert.deepEqual(rows.map((x) => [x.name, x.meshed]), [['details-default', '1/1'], ['reviews-v2', '1/1']]);
    });
  });
});
