// `mesh prometheus-config --platform kubernetes`: a scrape config in the spirit of Linkerd's linkerd-proxy job.
// Prometheus finds the meshed pods itself (kubernetes_sd, role pod) and gives each proxy's admin port the labels
// the local config gives its targets, so 'mesh stat --prometheus' and 'mesh edges --prometheus' work unchanged.
import { scrapeConfigHead } from '../../control/telemetry/prometheus.js';
import { PROXY_CONTAINER, SERVICE_ACCOUNT_ANNOTATION } from './names.js';

/** The admin port's name on the proxy container, as inject declares it. */
export const ADMIN_PORT_NAME = 'mesh-admin';

export interface KubePrometheusOptions {
  scrapeIntervalMs: number;
  /** The mesh's trust domain, for the identity label. */
  trustDomain: string;
  generatedBy?: string;
}

/** What Prometheus turns a discovered pod's metadata into, as a prometheus label name. */
const meta = (what: string) => `__meta_kubernetes_pod_${what}`;
const labelOf = (name: string) => meta(`label_${name.replace(/[^a-zA-Z0-9_]/g, '_')}`);
const annotationOf = (name: string) => meta(`annotation_${name.replace(/[^a-zA-Z0-9_]/g, '_')}`);
const q = (s: string) => JSON.stringify(s);

export function renderKubePrometheusConfig(o: KubePrometheusOptions): string {
  const relabel = (rule: { source?: string[]; separator?: string; regex?: string; action?: string; target?: string; replacement?: string }) => {
    const out: string[] = [];
    const first = (l: string) => out.push(`${out.length ? '        ' : '      - '}${l}`);
    if (rule.source) first(`source_labels: [${rule.source.join(', ')}]`);
    if (rule.separator) first(`separator: ${q(rule.separator)}`);
    if (rule.regex !== undefined) first(`regex: ${q(rule.regex)}`);
    if (rule.target) first(`target_label: ${rule.target}`);
    if (rule.replacement !== undefined) first(`replacement: ${q(rule.replacement)}`);
    first(`action: ${rule.action ?? 'replace'}`);
    return out;
  };
  const lines = [
    ...scrapeConfigHead([
      `Prometheus scrape config for the mesh's proxies on Kubernetes${o.generatedBy ? ` (${o.generatedBy})` : ''}.`,
      `Prometheus discovers the pods whose ${PROXY_CONTAINER} container declares the ${ADMIN_PORT_NAME} port and labels each`,
      "with namespace, deployment, pod, service, role and identity, which 'mesh stat --prometheus' and",
      "'mesh edges --prometheus' group by. Prometheus needs get, list and watch on pods (as Linkerd's does).",
    ], o.scrapeIntervalMs),
    // The pod's labels as Kubernetes has them win over what a proxy reports of itself (its deployment label
    // comes from its ServiceAccount); the proxy's own namespace/deployment/pod become exported_*.
    '    honor_labels: false',
    '    kubernetes_sd_configs:',
    '      - role: pod',
    '    relabel_configs:',
    // One target per pod: the proxy (a native sidecar, so an init container) at its admin port.
    ...relabel({ source: [meta('container_name'), meta('container_port_name')], separator: ';', regex: `${PROXY_CONTAINER};${ADMIN_PORT_NAME}`, action: 'keep' }),
    // Finished pods (a Job's) keep their spec but no proxy.
    ...relabel({ source: [meta('phase')], regex: 'Succeeded|Failed', action: 'drop' }),
    ...relabel({ source: ['__meta_kubernetes_namespace'], target: 'namespace' }),
    ...relabel({ source: [meta('name')], target: 'pod' }),
    ...relabel({ source: [labelOf('app')], target: 'service' }),
    // deployment is <app>-<version> as on the local platform, with version "default" when the label is absent.
    ...relabel({ source: [labelOf('app')], regex: '(.+)', target: 'deployment', replacement: '$1-default' }),
    ...relabel({ source: [labelOf('app'), labelOf('version')], separator: ';', regex: '(.+);(.+)', target: 'deployment', replacement: '$1-$2' }),
    ...relabel({ target: 'role', replacement: 'sidecar' }),
    // The workload identity: the ServiceAccount inject records on the pod (Prometheus sees no spec.serviceAccountName).
    ...relabel({
      source: ['__meta_kubernetes_namespace', annotationOf(SERVICE_ACCOUNT_ANNOTATION)], separator: ';', regex: '(.+);(.+)',
      target: 'identity', replacement: `spiffe://${o.trustDomain}/ns/$1/sa/$2`,
    }),
  ];
  return lines.join('\n') + '\n';
}
