// The rolling window and the stat/edges maths over it, fed with what real proxies render, and the
// PromQL the Prometheus source sends.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { MetricsRegistry } from '../src/proxy/metrics.js';
import { parseExposition } from '../src/control/telemetry/parse.js';
import { MetricStore } from '../src/control/telemetry/store.js';
import { LocalSource, targetLabels, type PodInfo } from '../src/control/telemetry/source.js';
import { computeStat, parseStatQuery, statQueryParams } from '../src/control/telemetry/stat.js';
import type { StatRow } from '../src/api/telemetry.js';
import { MeshError } from '../src/util/errors.js';
import { computeEdges, parseEdgesQuery } from '../src/control/telemetry/edges.js';
import { PrometheusSource, type HttpGet } from '../src/control/telemetry/prometheus.js';

const TD = 'spiffe://cluster.local/ns';
const pod = (namespace: string, service: string, version: string, suffix: string, role: 'sidecar' | 'ingress' = 'sidecar'): PodInfo => ({
  namespace, service, role, pod: role === 'ingress' ? `${service}-${suffix}` : `${service}-${version}-${suffix}`,
  deployment: role === 'ingress' ? service : `${service}-${version}`, identity: `${TD}/${namespace}/sa/${service}`,
});

/** A fake proxy: the real metrics registry, driven by hand. */
class FakeProxy {
  readonly metrics: MetricsRegistry;
  constructor(readonly info: PodInfo) {
    this.metrics = new MetricsRegistry({ namespace: info.namespace, deployment: info.deployment, pod: info.pod });
  }
  inbound(from: PodInfo, status: number, ms: number, n = 1): void {
    const s = this.metrics.requests({ direction: 'inbound', client_id: from.identity, tls: 'true' });
    for (let i = 0; i < n; i++) s.observe(status, ms);
  }
  outbound(to: PodInfo, status: number, ms: number, n = 1): void {
    const s = this.metrics.requests({ direction: 'outbound', dst_namespace: to.namespace, dst_service: to.service, dst_deployment: to.deployment, dst_pod: to.pod, server_id: to.identity, tls: 'true' });
    for (let i = 0; i < n; i++) s.observe(status, ms);
  }
  connection(direction: 'inbound' | 'outbound', peer: 'src' | 'dst', bytesRead: number, bytesWritten: number): void {
    const sock = Object.assign(new EventEmitter(), { bytesRead, bytesWritten }) as unknown as Socket;
    this.metrics.tcp({ direction, peer, tls: direction === 'inbound' ? 'true' : 'false' }).track(sock);
  }
}

class Mesh {
  readonly store = new MetricStore();
  readonly proxies: FakeProxy[] = [];
  readonly source = new LocalSource(this.store, () => this.proxies.map((p) => p.info), 1000);
  add(info: PodInfo): FakeProxy {
    const p = new FakeProxy(info);
    this.proxies.push(p);
    return p;
  }
  scrape(t: number): void {
    for (const p of this.proxies) this.store.ingest(`${p.info.namespace}/${p.info.pod}`, targetLabels(p.info), parseExposition(p.metrics.render()), t);
    this.store.completeRound(t);
  }
}

const row = (rows: StatRow[], name: string) => {
  const r = rows.find((x) => x.name === name);
  assert.ok(r, `a row for ${name} in ${rows.map((x) => x.name).join(', ')}`);
  return r;
};
const close = (a: number | null, b: number, eps = 1e-6) => assert.ok(a !== null && Math.abs(a - b) < eps, `${a} ≈ ${b}`);
const q = (s: string) => parseStatQuery(new URLSearchParams(s));

describe('the rolling window', () => {
  it('counts a series that appears between two scrapes from zero', () => {
    const m = new Mesh();
    const web = m.add(pod('default', 'web', 'v1', 'a'));
    const client = pod('default', 'client', 'v1', 'b');
    m.scrape(0);
    web.inbound(client, 200, 2, 50);
    m.scrape(10_000);
    // 50 requests over the 10 s window.
    close(m.store.rate('request_total', { direction: 'inbound' }, ['deployment'], 10_000)[0]!.value, 5);
    // A window longer than what the store holds still divides by its length, as Prometheus does.
    close(m.store.rate('request_total', { direction: 'inbound' }, ['deployment'], 60_000)[0]!.value, 50 / 60);
  });

  it('counts what a new proxy served before its first scrape from its start, when that start is in the window', () => {
    const m = new Mesh();
    const client = pod('default', 'client', 'v1', 'b');
    // Started at 5 s, 30 requests served before the control plane first scraped it at 8 s.
    const web = m.add(pod('default', 'web', 'v1', 'a'));
    web.metrics.gauge('process_start_time_seconds', () => 5);
    web.inbound(client, 200, 2, 30);
    m.scrape(8_000);
    m.scrape(9_000);
    close(m.store.rate('request_total', { direction: 'inbound' }, ['deployment'], 10_000)[0]!.value, 3);
    // A proxy that started before the retention: its first scrape is only a baseline, as in Prometheus.
    const old = new Mesh();
    const api = old.add(pod('default', 'api', 'v1', 'c'));
    api.metrics.gauge('process_start_time_seconds', () => 1);
    api.inbound(client, 200, 2, 30);
    old.scrape(old.store.retentionMs + 2_000);
    old.scrape(old.store.retentionMs + 3_000);
    assert.equal(old.store.rate('request_total', { direction: 'inbound' }, ['deployment'], 10_000).reduce((a, x) => a + x.value, 0), 0);
  });

  it('counts a restarted proxy\'s counters from zero, like increase()', () => {
    const m = new Mesh();
    const info = pod('default', 'web', 'v1', 'a');
    const client = pod('default', 'client', 'v1', 'b');
    let web = m.add(info);
    web.inbound(client, 200, 2, 100);
    m.scrape(0);
    web.inbound(client, 200, 2, 20);
    m.scrape(10_000);
    // The same pod restarts: a fresh registry, counting from zero again.
    m.proxies.length = 0;
    web = m.add(info);
    web.inbound(client, 200, 2, 7);
    m.scrape(20_000);
    web.inbound(client, 200, 2, 3);
    m.scrape(30_000);
    close(m.store.rate('request_total', {}, [], 30_000)[0]!.value, (20 + 7 + 3) / 30);
  });

  it('interpolates at the window start, so steady traffic gives its exact rate', () => {
    const m = new Mesh();
    const web = m.add(pod('default', 'web', 'v1', 'a'));
    const client = pod('default', 'client', 'v1', 'b');
    for (let t = 0; t <= 100_000; t += 10_000) {
      web.inbound(client, 200, 2, 30); // 3 rps
      m.scrape(t);
    }
    close(m.store.rate('request_total', {}, [], 25_000)[0]!.value, 3);
  });

  it('reads gauges only from proxies scraped in the latest rounds', () => {
    const m = new Mesh();
    const a = m.add(pod('default', 'web', 'v1', 'a'));
    a.connection('inbound', 'src', 10, 20);
    m.scrape(0);
    assert.equal(m.store.gauge('tcp_open_connections', { direction: 'inbound' }, ['pod'])[0]!.value, 1);
    m.proxies.length = 0;
    m.scrape(1000);
    m.scrape(2000);
    assert.deepEqual(m.store.gauge('tcp_open_connections', { direction: 'inbound' }, ['pod']), []);
  });

  it('drops samples and targets older than the retention', () => {
    const store = new MetricStore(60_000);
    const exp = (v: number) => parseExposition(`# TYPE x_total counter\nx_total ${v}\n`);
    store.ingest('a', {}, exp(1), 0);
    store.completeRound(0);
    store.ingest('b', {}, exp(1), 0);
    for (let t = 10_000; t <= 200_000; t += 10_000) {
      store.ingest('a', {}, exp(t / 1000), t);
      store.completeRound(t);
    }
    assert.deepEqual(store.health().map((h) => h.key), ['a']);
    close(store.rate('x_total', {}, [], 60_000)[0]!.value, 1);
  });
});

describe('stat over the control plane\'s window', () => {
  function bookinfo() {
    const m = new Mesh();
    const ingressInfo = pod('default', 'ingress', 'v1', 'i', 'ingress');
    const webInfo = pod('default', 'web', 'v1', 'w');
    const apiInfo = pod('default', 'api', 'v1', 'x');
    const api2Info = pod('default', 'api', 'v2', 'y');
    const otherInfo = pod('other', 'batch', 'v1', 'z');
    const ingress = m.add(ingressInfo);
    const web = m.add(webInfo);
    const api = m.add(apiInfo);
    const api2 = m.add(api2Info);
    m.add(otherInfo);
    m.scrape(0);
    // 60 s: ingress → web 600 (540 ok, 60 failed), web → api v1 300, web → api v2 100.
    ingress.outbound(webInfo, 200, 8, 540);
    ingress.outbound(webInfo, 500, 8, 60);
    web.inbound(ingressInfo, 200, 6, 540);
    web.inbound(ingressInfo, 500, 6, 60);
    web.outbound(apiInfo, 200, 3, 300);
    web.outbound(api2Info, 200, 40, 100);
    api.inbound(webInfo, 200, 2, 300);
    api2.inbound(webInfo, 200, 30, 100);
    web.connection('inbound', 'src', 1000, 3000);
    web.connection('inbound', 'src', 500, 0);
    ingress.connection('outbound', 'src', 60, 6000);
    m.scrape(60_000);
    return m;
  }

  it('gives success, RPS, latency and connections per deployment, the ingress from its outbound', async () => {
    const m = bookinfo();
    const { rows, hints } = await computeStat(m.source, q('resource=deploy&window=1m'));
    assert.deepEqual(rows.map((r) => r.name), ['api-v1', 'api-v2', 'ingress', 'web-v1']);
    const web = row(rows, 'web-v1');
    close(web.success, 0.9);
    close(web.rps, 10);
    assert.equal(web.meshed, '1/1');
    assert.equal(web.tcp_open_connections, 2);
    close(web.tcp_read_bytes_rate, 1500 / 60);
    close(web.tcp_write_bytes_rate, 3000 / 60);
    // All observations at 6 ms fall in the (5, 7.5] bucket: p50 interpolates to its middle.
    close(web.latency_ms_p50, 6.25);
    const ingress = row(rows, 'ingress');
    close(ingress.success, 0.9);
    close(ingress.rps, 10);
    assert.equal(ingress.tcp_open_connections, 1);
    close(row(rows, 'api-v2').rps, 100 / 60);
    assert.deepEqual(hints, []);
  });

  it('groups by pod, service and namespace', async () => {
    const m = bookinfo();
    const svc = await computeStat(m.source, q('resource=svc'));
    assert.deepEqual(svc.rows.map((r) => `${r.name} ${r.meshed}`), ['api 2/2', 'ingress 1/1', 'web 1/1']);
    close(row(svc.rows, 'api').rps, 400 / 60);
    const pods = await computeStat(m.source, q('resource=po'));
    assert.ok(pods.rows.some((r) => r.name === 'api-v2-y'));
    const ns = await computeStat(m.source, q('resource=ns'));
    assert.deepEqual(ns.rows.map((r) => `${r.name} ${r.meshed}`), ['default 4/4', 'other 1/1']);
    // The namespace is its pods' inbound traffic: web's 600 and api's 400, not the ingress's again.
    close(row(ns.rows, 'default').rps, 1000 / 60);
    assert.equal(row(ns.rows, 'other').rps, null);
  });

  it('shows one namespace by default, every namespace with all', async () => {
    const m = bookinfo();
    assert.ok(!(await computeStat(m.source, q('resource=deploy'))).rows.some((r) => r.namespace === 'other'));
    assert.ok((await computeStat(m.source, q('resource=deploy&all=true'))).rows.some((r) => r.name === 'batch-v1'));
    const one = await computeStat(m.source, q('resource=deploy&namespace=other'));
    assert.deepEqual(one.rows.map((r) => [r.name, r.rps]), [['batch-v1', null]]);
    assert.match(one.hints.join('\n'), /No traffic yet/);
  });

  it('shows the outbound side with --from and --to', async () => {
    const m = bookinfo();
    const from = await computeStat(m.source, q('resource=deploy&from=web-v1'));
    assert.deepEqual(from.rows.map((r) => r.name), ['api-v1', 'api-v2']);
    close(row(from.rows, 'api-v2').latency_ms_p50, 35);
    assert.equal(row(from.rows, 'api-v1').tcp_open_connections, null);
    const to = await computeStat(m.source, q('resource=deploy&to=svc/api'));
    assert.deepEqual(to.rows.map((r) => [r.name, r.rps]), [['web-v1', 400 / 60]]);
    const toSvcBare = await computeStat(m.source, q('resource=deploy&to=api'));
    assert.equal(toSvcBare.rows.length, 1);
    const none = await computeStat(m.source, q('resource=deploy&from=api-v1'));
    assert.deepEqual(none.rows, []);
    assert.match(none.hints.join(''), /No traffic yet from api-v1/);
  });

  const refusals: { query: string; status: number; error: RegExp }[] = [
    { query: 'resource=widgets', status: 400, error: /unknown resource type 'widgets'/ },
    { query: 'resource=deploy&name=nope', status: 404, error: /no deployment 'nope' in namespace default/ },
    { query: 'resource=deploy&name=nope&all=1', status: 404, error: /no deployment 'nope' in any namespace/ },
    { query: 'resource=deploy&from=nope', status: 404, error: /no deployment or service 'nope'/ },
    { query: 'resource=deploy&to=po/nope', status: 404, error: /no pod 'nope'/ },
    { query: 'resource=deploy&from=a&to=b', status: 400, error: /cannot be used together/ },
    { query: 'resource=deploy&window=2h', status: 400, error: /longer than the 15m/ },
    { query: 'resource=deploy&window=soon', status: 400, error: /not a duration/ },
    { query: 'resource=deploy&from=gadget/x', status: 400, error: /unknown resource type 'gadget'/ },
  ];
  for (const r of refusals) {
    it(`refuses ${r.query} with ${r.status}`, async () => {
      const m = bookinfo();
      await assert.rejects(async () => computeStat(m.source, q(r.query)), (err: unknown) => {
        assert.ok(err instanceof MeshError);
        assert.equal(err.status, r.status);
        assert.match(err.message, r.error);
        assert.ok(err.hint, 'with a hint');
        return true;
      });
    });
  }

  it('says when there are no metrics yet', async () => {
    const m = new Mesh();
    const r = await computeStat(m.source, q('resource=deploy'));
    assert.deepEqual(r.rows, []);
    assert.match(r.hints.join('\n'), /no metrics yet/);
    assert.match(r.hints.join('\n'), /No traffic yet/);
  });

  it('carries a query through the API parameters unchanged', () => {
    const query = q('resource=svc&name=api&namespace=x&all=true&window=30s&to=deploy/web-v1&toNamespace=y');
    assert.deepEqual(parseStatQuery(statQueryParams(query)), query);
  });

  it('lists edges with the identities on both sides', async () => {
    const m = bookinfo();
    const { edges } = await computeEdges(m.source, parseEdgesQuery(new URLSearchParams('resource=deploy')));
    assert.deepEqual(edges.map((e) => `${e.src}→${e.dst} ${e.secured ? 'secured' : 'plain'}`), ['ingress→web-v1 secured', 'web-v1→api-v1 secured', 'web-v1→api-v2 secured']);
    const e = edges.find((x) => x.src === 'web-v1' && x.dst === 'api-v1')!;
    assert.equal(e.client_id, `${TD}/default/sa/web`);
    assert.equal(e.server_id, `${TD}/default/sa/api`);
    close(e.rps, 5);
    const pods = await computeEdges(m.source, parseEdgesQuery(new URLSearchParams('resource=po')));
    assert.ok(pods.edges.some((x) => x.src === 'web-v1-w' && x.dst === 'api-v2-y'));
    await assert.rejects(async () => parseEdgesQuery(new URLSearchParams('resource=ns')), /between deployments or pods/);
  });
});

describe('the Prometheus source', () => {
  function fake(answers: Record<string, unknown>, seen: string[]): HttpGet {
    return async (url) => {
      const query = new URL(url).searchParams.get('query')!;
      seen.push(query);
      const key = Object.keys(answers).find((k) => query.startsWith(k));
      return { status: 200, body: JSON.stringify(key ? answers[key] : { status: 'success', data: { resultType: 'vector', result: [] } }) };
    };
  }
  const vector = (result: { metric: Record<string, string>; value: number | string }[]) =>
    ({ status: 'success', data: { resultType: 'vector', result: result.map((r) => ({ metric: r.metric, value: [1700000000, String(r.value)] })) } });

  it('asks in PromQL, the same questions linkerd viz asks', async () => {
    const seen: string[] = [];
    const web = { namespace: 'default', deployment: 'web-v1', pod: 'web-v1-a', service: 'web', role: 'sidecar', identity: 'id' };
    const src = new PrometheusSource('http://127.0.0.1:9090/', fake({
      'up{': vector([{ metric: { __name__: 'up', ...web }, value: 1 }]),
      'sum(rate(response_total{direction="inbound"}': vector([
        { metric: { namespace: 'default', deployment: 'web-v1', classification: 'success' }, value: 9 },
        { metric: { namespace: 'default', deployment: 'web-v1', classification: 'failure' }, value: 1 },
      ]),
      'histogram_quantile(0.5, sum(rate(response_latency_ms_bucket{direction="inbound"}': vector([{ metric: { namespace: 'default', deployment: 'web-v1' }, value: 2.5 }]),
      'histogram_quantile(0.99, sum(rate(response_latency_ms_bucket{direction="outbound"': vector([{ metric: { namespace: 'default', deployment: 'web-v1' }, value: 'NaN' }]),
    }, seen));
    const { rows } = await computeStat(src, q('resource=deploy&window=30s'));
    assert.deepEqual(rows.map((r) => [r.name, r.success, r.rps, r.latency_ms_p50, r.meshed]), [['web-v1', 0.9, 10, 2.5, '1/1']]);
    assert.ok(seen.includes('up{role=~"sidecar|ingress"} == 1'));
    assert.ok(seen.includes('sum(rate(response_total{direction="inbound"}[30s])) by (namespace, deployment, classification, grpc_status)'), seen.join('\n'));
    assert.ok(seen.includes('histogram_quantile(0.5, sum(rate(response_latency_ms_bucket{direction="inbound"}[30s])) by (le, namespace, deployment))'));
    assert.ok(seen.includes('sum(tcp_open_connections{direction="inbound",peer="src"}) by (namespace, deployment)'));
    assert.ok(seen.includes('sum(rate(response_total{direction="outbound",role="ingress"}[30s])) by (namespace, deployment, classification, grpc_status)'));
  });

  it('says what is wrong when Prometheus cannot answer', async () => {
    const refused: HttpGet = async () => { throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }); };
    await assert.rejects(new PrometheusSource('http://127.0.0.1:9', refused).query('up'), /cannot reach Prometheus at http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\)/);
    const html: HttpGet = async () => ({ status: 200, body: '<html>' });
    await assert.rejects(new PrometheusSource('http://x', html).query('up'), /not its API/);
    const bad: HttpGet = async () => ({ status: 400, body: JSON.stringify({ status: 'error', error: 'parse error' }) });
    await assert.rejects(new PrometheusSource('http://x', bad).query('up('), /refused the query: parse error/);
    assert.throws(() => new PrometheusSource('ftp://x'), /not a Prometheus URL/);
  });
});
