// mesh grafana-dashboards: Grafana dashboards on the proxies' Prometheus metrics (the names mesh prometheus-config
// scrapes): top line, workload, route, authorization and proxy resources. Each panel is one PromQL query.
import type { Command } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

interface Panel {
  title: string;
  expr: string;
  unit: string;
  legend: string;
}

const R = '[$__rate_interval]';
const W = 'namespace=~"$namespace",deployment=~"$deployment"';
const ok = `sum by (deployment) (rate(response_total{direction="inbound",classification="success",${W}}${R}))`;
const all = `sum by (deployment) (rate(response_total{direction="inbound",${W}}${R}))`;
const p = (q: number, by: string, match: string) => `histogram_quantile(${q}, sum by (le, ${by}) (rate(response_latency_ms_bucket{${match}}${R})))`;

export const DASHBOARDS: Record<string, { title: string; panels: Panel[] }> = {
  'mesh-top-line': { title: 'mesh: top line', panels: [
    { title: 'Success rate by workload', expr: `${ok} / ${all}`, unit: 'percentunit', legend: '{{deployment}}' },
    { title: 'Requests per second by workload', expr: all, unit: 'reqps', legend: '{{deployment}}' },
    { title: 'p99 latency by workload', expr: p(0.99, 'deployment', `direction="inbound",${W}`), unit: 'ms', legend: '{{deployment}}' },
  ] },
  'mesh-workload': { title: 'mesh: workload', panels: [
    { title: 'Inbound requests per second by client', expr: `sum by (client_id) (rate(request_total{direction="inbound",${W}}${R}))`, unit: 'reqps', legend: '{{client_id}}' },
    { title: 'Outbound requests per second by destination', expr: `sum by (dst_deployment) (rate(request_total{direction="outbound",dst_deployment!="",${W}}${R}))`, unit: 'reqps', legend: '{{dst_deployment}}' },
    { title: 'Inbound latency p50 / p95 / p99', expr: p(0.5, 'deployment', `direction="inbound",${W}`), unit: 'ms', legend: 'p50 {{deployment}}' },
    { title: 'Responses by status code', expr: `sum by (status_code) (rate(response_total{direction="inbound",${W}}${R}))`, unit: 'reqps', legend: '{{status_code}}' },
    { title: 'Open TCP connections', expr: `sum by (deployment) (tcp_open_connections{direction="inbound",${W}})`, unit: 'short', legend: '{{deployment}}' },
  ] },
  'mesh-route': { title: 'mesh: route', panels: [
    { title: 'Observed split by version (outbound, per destination service)', expr: `sum by (dst_service, dst_deployment) (rate(response_total{direction="outbound",dst_service=~"$service",dst_deployment!=""}${R}))`, unit: 'reqps', legend: '{{dst_deployment}}' },
    { title: 'Success rate by destination version', expr: `sum by (dst_deployment) (rate(response_total{direction="outbound",classification="success",dst_service=~"$service",dst_deployment!=""}${R})) / sum by (dst_deployment) (rate(response_total{direction="outbound",dst_service=~"$service",dst_deployment!=""}${R}))`, unit: 'percentunit', legend: '{{dst_deployment}}' },
    { title: 'p99 latency by destination version', expr: p(0.99, 'dst_deployment', 'direction="outbound",dst_service=~"$service",dst_deployment!=""'), unit: 'ms', legend: '{{dst_deployment}}' },
  ] },
  'mesh-authorization': { title: 'mesh: authorization', panels: [
    { title: 'Allowed requests per second by client', expr: `sum by (deployment, client_id) (rate(inbound_http_authz_allow_total{${W}}${R}))`, unit: 'reqps', legend: '{{client_id}} → {{deployment}}' },
    { title: 'Denied requests per second by client', expr: `sum by (deployment, client_id) (rate(inbound_http_authz_deny_total{${W}}${R}))`, unit: 'reqps', legend: '{{client_id}} → {{deployment}}' },
    { title: 'Allowed requests per second by rule', expr: `sum by (deployment, rule) (rate(inbound_http_authz_allow_total{${W}}${R}))`, unit: 'reqps', legend: '{{deployment}}: {{rule}}' },
    { title: 'Denied requests per second by rule', expr: `sum by (deployment, rule) (rate(inbound_http_authz_deny_total{${W}}${R}))`, unit: 'reqps', legend: '{{deployment}}: {{rule}}' },
  ] },
  'mesh-proxy-resources': { title: 'mesh: proxy resources', panels: [
    { title: 'Proxy resident memory', expr: `sum by (pod) (process_resident_memory_bytes{${W}})`, unit: 'bytes', legend: '{{pod}}' },
    { title: 'Proxy uptime', expr: `time() - max by (pod) (process_start_time_seconds{${W}})`, unit: 's', legend: '{{pod}}' },
    { title: 'Workload certificate expires in', expr: `min by (pod) (identity_cert_expiration_timestamp_seconds{${W}}) - time()`, unit: 's', legend: '{{pod}}' },
    { title: 'Bytes read and written per second', expr: `sum by (pod) (rate(tcp_read_bytes_total{${W}}${R}) + rate(tcp_write_bytes_total{${W}}${R}))`, unit: 'Bps', legend: '{{pod}}' },
  ] },
};

const variable = (name: string, label: string) => ({
  name, type: 'query', datasource: { type: 'prometheus', uid: '${datasource}' }, query: { query: `label_values(request_total, ${label})`, refId: name },
  includeAll: true, multi: true, allValue: '.*', current: { text: 'All', value: '$__all' }, refresh: 2,
});

export function grafanaDashboard(uid: string): unknown {
  const d = DASHBOARDS[uid]!;
  return {
    uid, title: d.title, tags: ['mesh'], schemaVersion: 39, refresh: '10s', time: { from: 'now-15m', to: 'now' },
    templating: { list: [
      { name: 'datasource', type: 'datasource', query: 'prometheus', current: {} },
      variable('namespace', 'namespace'), variable('deployment', 'deployment'), variable('service', 'dst_service'),
    ] },
    panels: d.panels.map((x, i) => ({
      id: i + 1, type: 'timeseries', title: x.title, datasource: { type: 'prometheus', uid: '${datasource}' },
      gridPos: { h: 8, w: 12, x: (i % 2) * 12, y: Math.floor(i / 2) * 8 },
      fieldConfig: { defaults: { unit: x.unit }, overrides: [] },
      targets: [{ refId: 'A', expr: x.expr, legendFormat: x.legend }],
    })),
  };
}

export function registerGrafana(program: Command): void {
  program
    .command('grafana-dashboards')
    .description('write Grafana dashboards (top line, workload, route, authorization, proxy resources) on the mesh metrics')
    .option('--out <dir>', 'directory to write the JSON files to', 'grafana-dashboards')
    .action((f: { out: string }) => {
      const dir = resolve(f.out);
      mkdirSync(dir, { recursive: true });
      for (const uid of Object.keys(DASHBOARDS)) writeFileSync(join(dir, `${uid}.json`), JSON.stringify(grafanaDashboard(uid), null, 2) + '\n');
      console.log(`wrote ${Object.keys(DASHBOARDS).length} dashboards to ${dir} (import them in Grafana with a Prometheus data source scraping mesh prometheus-config's targets)`);
    });
}
