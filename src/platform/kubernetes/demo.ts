// The bookinfo sample on Kubernetes: the local demo's apps (demo/*.js, shipped in the mesh image) as Deployments
// with Istio-style ServiceAccounts (bookinfo-reviews for Service reviews), one Service per app on bookinfo's port
// 9080, and an optional traffic generator; deployed injected, ready once a page is served through the mesh.
import type { KubernetesObject, V1Deployment } from '@kubernetes/client-node';
import { MeshError } from '../../util/errors.js';
import { VERSION } from '../../version.js';
import type { KubeClient, TargetOptions } from './client.js';
import type { DemoFlags } from '../index.js';
import { injectObject, type InjectReport } from './inject.js';
import { applyAll } from './install.js';
import { getJson } from './list-watch.js';
import type { KubeObject } from './manifests.js';
import { CONTROL_NAMESPACE, MESH_CONFIGMAP, TRUST_ROOTS_CONFIGMAP, defaultImage } from './names.js';
import { DEMO_APPS } from '../demo-apps.js';

interface ConfigMap extends KubernetesObject { data?: Record<string, string> }

export const DEMO_NAMESPACE = 'bookinfo';
/** Every object of the sample carries it; `demo --down` deletes by it. */
export const DEMO_LABEL = 'mesh.io/demo';
export const DEMO_PORT = 9080;
/** The sidecar's outbound listener, which the demo apps call through (MESH_OUTBOUND), as with `mesh run`. */
const OUTBOUND = '127.0.0.1:4140';


export interface DemoValues {
  /** The mesh image (it holds the apps in /opt/mesh/demo). */
  image: string;
  namespace?: string;
  /** Requests per second of the traffic generator; 0 for none. */
  rate: number;
}

export const serviceAccountOf = (service: string) => `bookinfo-${service}`;

/** The sample's objects in apply order: the namespace, accounts and Services, then the Deployments. */
export function renderDemo(v: DemoValues): KubeObject[] {
  const ns = v.namespace ?? DEMO_NAMESPACE;
  const labels = (extra: Record<string, string> = {}) => ({ [DEMO_LABEL]: 'bookinfo', ...extra });
  const services = [...new Set(DEMO_APPS.map((a) => a.service))];
  const deployment = (name: string, app: string, version: string, sa: string, script: string, env: Record<string, string>, port?: number): KubeObject => ({
    apiVersion: 'apps/v1', kind: 'Deployment',
    metadata: { name, namespace: ns, labels: labels({ app, version }) },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app, version } },
      template: {
        metadata: { labels: labels({ app, version }) },
        spec: {
          serviceAccountName: sa,
          // The apps stop in well under a second (SIGTERM closes their server).
          terminationGracePeriodSeconds: 5,
          containers: [{
            name: app,
            image: v.image,
            imagePullPolicy: 'IfNotPresent',
            command: ['node', `/opt/mesh/demo/${script}`],
            env: Object.entries({ ...env, MESH_OUTBOUND: OUTBOUND }).map(([name, value]) => ({ name, value })),
            ...(port ? { ports: [{ name: 'http', containerPort: port, protocol: 'TCP' }] } : {}),
            resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
            securityContext: { runAsNonRoot: true, runAsUser: 2103, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
          }],
        },
      },
    },
  });
  const out: KubeObject[] = [
    // The namespace is the sample's own: demo --down deletes it with everything in it.
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: labels() } },
  ];
  for (const s of services) {
    out.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: serviceAccountOf(s), namespace: ns, labels: labels({ app: s }) } });
    // A gRPC app's port says so (appProtocol): its sidecar speaks HTTP/2 cleartext to it.
    const grpc = DEMO_APPS.some((a) => a.service === s && a.appProtocol === 'h2c');
    out.push({
      apiVersion: 'v1', kind: 'Service',
      metadata: { name: s, namespace: ns, labels: labels({ app: s, service: s }) },
      spec: { selector: { app: s }, ports: [{ name: grpc ? 'grpc' : 'http', port: DEMO_PORT, targetPort: DEMO_PORT, protocol: 'TCP', ...(grpc ? { appProtocol: 'grpc' } : {}) }] },
    });
  }
  for (const a of DEMO_APPS) {
    out.push(deployment(`${a.service}-${a.version}`, a.service, a.version, serviceAccountOf(a.service), a.script, { PORT: String(DEMO_PORT), SERVICE_VERSION: a.version }, DEMO_PORT));
  }
  if (v.rate > 0) {
    out.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: serviceAccountOf('traffic'), namespace: ns, labels: labels({ app: 'traffic' }) } });
    out.push(deployment('traffic', 'traffic', 'v1', serviceAccountOf('traffic'), 'traffic.js', {
      TARGET_URL: `http://productpage:${DEMO_PORT}/productpage`, RATE: String(v.rate), MESH_DEMO_TRAFFIC: '1',
    }));
  }
  return out;
}

/** What the product page's JSON API answers (productpage.js): the details and the reviews version that served. */
export interface ProductAnswer {
  details?: { error?: string };
  reviews?: { podname?: string; error?: string };
}

export const productApiPath = (namespace = DEMO_NAMESPACE, path = '/api/v1/products/0') =>
  `/api/v1/namespaces/${namespace}/services/productpage:${DEMO_PORT}/proxy${path}`;

export interface DeployedDemo {
  namespace: string;
  objects: number;
  changed: number;
  /** The reviews version that served the first page. */
  firstReviews: string;
}

/**
 * Applies the sample, injected as `mesh inject` does (with the installed trust anchors, image and trust domain, so
 * it does not depend on the webhook), waits for its Deployments, then for the product page through the API
 * server's service proxy: ready means a page served through the mesh.
 */
export async function deployDemo(kube: KubeClient, o: { rate: number; timeoutMs: number; onStep?: (what: string) => void }): Promise<DeployedDemo> {
  const ns = DEMO_NAMESPACE;
  const roots = await kube.read<ConfigMap>({ apiVersion: 'v1', kind: 'ConfigMap', name: TRUST_ROOTS_CONFIGMAP, namespace: CONTROL_NAMESPACE });
  const anchors = roots?.data?.['ca-bundle.crt'];
  if (!anchors) {
    throw new MeshError(`mesh is not installed on ${kube.contextName} (no ${CONTROL_NAMESPACE}/${TRUST_ROOTS_CONFIGMAP})`,
      'install it first: mesh --platform kubernetes install --crds --apply, then mesh --platform kubernetes install --apply');
  }
  const installed = (await kube.read<ConfigMap>({ apiVersion: 'v1', kind: 'ConfigMap', name: MESH_CONFIGMAP, namespace: CONTROL_NAMESPACE }))?.data ?? {};
  const image = installed.image ?? defaultImage();
  const reports: InjectReport[] = [];
  const injectOpts = { version: VERSION, image, trustDomain: installed.trustDomain ?? 'cluster.local', trustAnchorsPem: anchors };
  const objects = renderDemo({ image, namespace: ns, rate: o.rate }).map((x) => injectObject(x, injectOpts, reports) as KubeObject);
  const applied = await applyAll(kube, objects);
  const deadline = Date.now() + o.timeoutMs;
  o.onStep?.('deployments');
  const deployments = objects.filter((x) => x.kind === 'Deployment').map((x) => x.metadata.name);
  await until(deadline, async () => {
    const notReady: string[] = [];
    for (const name of deployments) {
      const d = await kube.read<V1Deployment>({ apiVersion: 'apps/v1', kind: 'Deployment', name, namespace: ns });
      const s = d?.status;
      const current = (s?.observedGeneration ?? 0) >= (d?.metadata?.generation ?? 1);
      if (!d || !current || (s?.updatedReplicas ?? 0) < (d.spec?.replicas ?? 1) || (s?.readyReplicas ?? 0) < (d.spec?.replicas ?? 1)) notReady.push(name);
    }
    return notReady.length ? `not ready: ${notReady.join(', ')}` : true;
  }, `the sample's Deployments are not ready after ${Math.round(o.timeoutMs / 1000)} s`, `kubectl -n ${ns} get pods; kubectl -n ${ns} describe pods`);
  o.onStep?.('page');
  let firstReviews = '';
  await until(deadline, async () => {
    try {
      const a = await getJson<ProductAnswer>(kube.kc, productApiPath(ns));
      if (a.reviews?.podname && !a.details?.error) {
        firstReviews = a.reviews.podname;
        return true;
      }
      return `the page answered without ${a.details?.error ? `details (${a.details.error})` : `reviews (${a.reviews?.error ?? 'no version'})`}`;
    } catch (err) {
      return (err as Error).message;
    }
  }, 'the product page does not answer through the mesh', `kubectl -n ${ns} logs deploy/productpage-v1 -c mesh-proxy`);
  return { namespace: ns, objects: objects.length, changed: applied.changed, firstReviews };
}

/** Polls `probe` until it returns true; past the deadline, fails with the last thing it said. */
async function until(deadline: number, probe: () => Promise<true | string>, what: string, hint: string): Promise<void> {
  for (;;) {
    const r = await probe();
    if (r === true) return;
    if (Date.now() >= deadline) throw new MeshError(`${what} (${r})`, `see ${hint}`);
    await new Promise((res) => setTimeout(res, 500));
  }
}

/** Deletes the sample's namespace (and with it everything in it); false when it was not there. */
export async function removeDemo(kube: KubeClient, o: { wait: boolean; timeoutMs?: number }): Promise<boolean> {
  const ref = { apiVersion: 'v1', kind: 'Namespace', name: DEMO_NAMESPACE };
  const ns = await kube.read(ref);
  if (!ns) return false;
  if (ns.metadata?.labels?.[DEMO_LABEL] !== 'bookinfo') {
    throw new MeshError(`namespace ${DEMO_NAMESPACE} is not the sample's (no ${DEMO_LABEL}=bookinfo label)`, 'it was not made by mesh demo: delete it yourself if you mean to');
  }
  await kube.delete(ref);
  if (o.wait) {
    const deadline = Date.now() + (o.timeoutMs ?? 120_000);
    await until(deadline, async () => ((await kube.read(ref)) ? 'still terminating' : true), `namespace ${DEMO_NAMESPACE} is not gone`, `kubectl get ns ${DEMO_NAMESPACE} -o yaml`);
  }
  return true;
}

/** The walk-through, as the local demo prints it, in the form that reaches this cluster. */
const NEXT: [string, string][] = [
  ['workloads', 'the pods, their workloads and proxies'],
  [`stat deploy -n ${DEMO_NAMESPACE}`, 'success rate, RPS, latency (after ~10 s of traffic)'],
  [`edges deploy -n ${DEMO_NAMESPACE}`, 'who calls whom, with the identities proved'],
  [`route set reviews v1=80 v2=20 -n ${DEMO_NAMESPACE}`, 'split reviews by version'],
  [`route set reviews v3 --match header:end-user=jason -n ${DEMO_NAMESPACE}`, 'then sign in as jason: ?u=jason'],
  [`policy default deny -n ${DEMO_NAMESPACE}`, 'lock it down (then allow what should pass)'],
  ['check', 'is everything healthy?'],
  ['demo --down', 'remove the sample'],
];

/** `mesh --platform kubernetes demo [--down]`: the sample on the cluster, ready (a page served through the mesh) when it returns. */
export async function kubeDemo(kube: KubeClient, f: DemoFlags, target: TargetOptions): Promise<void> {
  const { step } = await import('../../ui/output.js');
  const { meshCmd } = await import('../../ui/invocation.js');
  const chalk = (await import('chalk')).default;
  if (f.down) {
    await step(`Removing the sample (namespace ${DEMO_NAMESPACE})`, () => removeDemo(kube, { wait: true }), (r) => (r ? `Removed the sample (namespace ${DEMO_NAMESPACE})` : 'The sample was not running'));
    return;
  }
  const local = (['ingressPort', 'accessLog', 'traceCollector'] as const).find((k) => f[k] !== undefined);
  if (local) {
    const flag = '--' + local.replace(/[A-Z]/g, (ch) => '-' + ch.toLowerCase());
    throw new MeshError(`${flag} is for the local demo`, 'on Kubernetes the product page is reached with kubectl port-forward (the demo prints how)');
  }
  const rate = f.traffic ? Number(f.rate) : 0;
  if (!(rate >= 0 && rate <= 1000)) throw new MeshError(`rate '${f.rate}' is not a number of requests per second`, 'pass --rate 0-1000');
  await step(`Starting details, ratings, reviews v1 v2 v3 and productpage with their proxies in namespace ${DEMO_NAMESPACE}`,
    () => deployDemo(kube, { rate, timeoutMs: 300_000 }),
    (r) => `The product page answers through the mesh (${r.firstReviews} served it; ${r.changed} of ${r.objects} objects changed)`);
  const ctx = target.context ? ` --context ${target.context}` : '';
  const global = `${process.env.MESH_PLATFORM === 'kubernetes' ? '' : '--platform kubernetes '}${target.kubeconfig ? `--kubeconfig ${target.kubeconfig} ` : ''}${ctx ? `${ctx.trim()} ` : ''}`;
  const cmds = NEXT.map(([c]) => meshCmd(global + c));
  const width = Math.max(...cmds.map((c) => c.length)) + 3;
  const kubectl = `kubectl${target.kubeconfig ? ` --kubeconfig ${target.kubeconfig}` : ''}${ctx}`;
  console.log(`
The sample is running in namespace ${DEMO_NAMESPACE}${rate ? `, with traffic at ${rate}/s` : ''}. Open the product page:
  ${chalk.bold(`${kubectl} -n ${DEMO_NAMESPACE} port-forward svc/productpage ${DEMO_PORT}:${DEMO_PORT}`)}
  ${chalk.bold(`http://localhost:${DEMO_PORT}/productpage`)}
Each load names the reviews version that served it (reviews-v1, -v2 or -v3), all over mutual TLS.

Next:
${cmds.map((c, i) => `  ${c.padEnd(width)}${NEXT[i]![1]}`).join('\n')}`);
}
