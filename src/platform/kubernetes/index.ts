// The Kubernetes platform as the CLI sees it: a cluster reached through the kubeconfig (as kubectl picks it), the
// mesh's objects in it, and the control plane behind the API server's service proxy. Everything, the client
// included, loads on first use: the local platform's commands never load @kubernetes/client-node.
import chalk from 'chalk';
import { banner } from '../../ui/output.js';
import { checked, MeshError } from '../../util/errors.js';
import type { KubeClient } from './client.js';
import type { Target } from './setup.js';
import type { Platform, PlatformOptions } from '../index.js';
import type { TapPoll } from '../../api/tap.js';
import type { ControlForward } from './control-forward.js';

/** What to do instead, for the commands that act on the local platform only. */
const LOCAL_ONLY: Record<string, string> = {
  run: "deploy the app and add its proxy with 'mesh inject app.yaml | kubectl apply -f -'",
  ingress: "deploy the app and add its proxy with 'mesh inject app.yaml | kubectl apply -f -'",
  stop: 'stop pods with kubectl (kubectl delete pod NAME, or scale their Deployment)',
  identity: "'mesh check --platform kubernetes' checks the trust anchors and the issuer",
};

function localOnly(command = 'this command'): MeshError {
  const hint = LOCAL_ONLY[command.split(' ')[0]!] ?? 'use the local platform (drop --platform kubernetes / MESH_PLATFORM)';
  return new MeshError(`'mesh ${command}' runs on the local platform only`, hint);
}

/** The cluster a command acts on, as kubectl picks it: connected on first use, then named in the banner. */
export function kubeTarget(o: PlatformOptions): Target {
  const options = { kubeconfig: o.kubeconfig, context: o.context };
  let connecting: Promise<KubeClient> | undefined;
  const target: Target = {
    options,
    banner: (contextName) => {
      if (!o.quiet) banner('kubernetes', contextName, 'context');
    },
    kube: () => (connecting ??= (async () => {
      const { KubeClient } = await import('./client.js');
      const kube = await KubeClient.connect(options);
      target.banner(kube.contextName);
      return kube;
    })()),
  };
  return target;
}

/**
 * A command that grants what the control plane's 403 says is missing ("USER may not tap KIND/NAME in namespace NS"):
 * mesh:tap-admin bound in that namespace (a namespace tap is namespace-wide too).
 */
export function tapBindingHint(error: string): string {
  const m = /^(.+?) may not tap \S+ in namespace (\S+?):/.exec(error);
  if (!m) return 'bind the mesh:tap-admin ClusterRole: kubectl create clusterrolebinding NAME --clusterrole mesh:tap-admin --user USER';
  const [, user, ns] = m;
  const name = `${user!.toLowerCase().replace(/[^a-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '') || 'user'}-tap`;
  return `let ${user} tap in ${ns}: kubectl create rolebinding ${name} -n ${ns} --clusterrole mesh:tap-admin --user '${user}' (or a clusterrolebinding for every namespace); mesh tap also needs get and create on pods/portforward in mesh-system`;
}

export function kubernetesPlatform(o: PlatformOptions): Platform {
  const target = kubeTarget(o);
  const { options } = target;
  const controlReader = async () => {
    const kube = await target.kube();
    const { controlGet } = await import('./control-proxy.js');
    return { get: <T>(path: string) => controlGet<T>(kube, path) };
  };
  const forwardToControl = async (): Promise<ControlForward> => (await import('./control-forward.js')).openControlForward(await target.kube());
  return {
    name: 'kubernetes',

    install: async (f) => (await import('./setup.js')).kubeInstall(target, f),
    uninstall: async (f) => (await import('./setup.js')).kubeUninstall(target, f),

    async check(c, run) {
      const [{ runChecks }, { KUBE_CATEGORIES, KUBE_PRE_CATEGORIES }, { kubeCheckView }] = await Promise.all([
        import('../../check/runner.js'), import('../../check/kube.js'), import('./check-view.js'),
      ]);
      // The view connects itself (its first check is whether the API answers); the banner follows.
      const view = kubeCheckView(options, (kube) => target.banner(kube.contextName));
      return runChecks(c.pre ? KUBE_PRE_CATEGORIES : KUBE_CATEGORIES, view, run);
    },

    routeStore: async () => (await import('./config-store.js')).kubeConfigStore(await target.kube(), 'routes'),
    policyStore: async () => (await import('./config-store.js')).kubeConfigStore(await target.kube(), 'policies'),
    controlReader,

    // Through the API server's service proxy to mesh-control, as stat goes.
    serverVersion: () => controlReader()
      .then((reader) => reader.get<{ version: string }>('/v1/version'))
      .then((v) => ({ version: v.version }), (err: Error) => ({ why: ` (${err.message})` })),

    async runControl(f) {
      const [{ CONTROL_PORT, WEBHOOK_PORT }, { parsePort }] = await Promise.all([import('./names.js'), import('../../util/duration.js')]);
      const port = f.port ? checked(() => parsePort(f.port!, 'port', true), 'pass --port 0-65535') : CONTROL_PORT;
      const webhookPort = f.webhookPort ? checked(() => parsePort(f.webhookPort!, 'webhook port', true), 'pass --webhook-port 0-65535') : WEBHOOK_PORT;
      const kube = await target.kube();
      const { runKubeControl } = await import('./control.js');
      return runKubeControl(kube, { port, webhookPort, address: process.env.MESH_LISTEN_ADDRESS || undefined });
    },

    runProxy: async (f) => (await import('./sidecar.js')).runKubeProxy(f),

    async prometheusConfig(f) {
      if (f.fileSd) throw new MeshError('--file-sd is for the local platform', 'on Kubernetes Prometheus finds the pods itself (kubernetes_sd): drop --file-sd');
      const { renderKubePrometheusConfig } = await import('./prometheus.js');
      // Prometheus discovers the proxies itself: the cluster is only asked for the installed trust domain.
      let trustDomain = f.trustDomain;
      if (trustDomain === undefined) {
        const names = await import('./names.js');
        const kube = await target.kube();
        const cm = await kube.read<{ apiVersion: string; kind: string; data?: Record<string, string> }>({ apiVersion: 'v1', kind: 'ConfigMap', name: names.MESH_CONFIGMAP, namespace: names.CONTROL_NAMESPACE });
        trustDomain = cm?.data?.trustDomain || 'cluster.local';
        if (!cm) process.stderr.write(chalk.dim(`mesh is not installed on ${kube.contextName}: assuming trust domain cluster.local (--trust-domain sets it)\n`));
      }
      if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(trustDomain)) {
        throw new MeshError(`trust domain '${trustDomain}' is not valid`, 'use lower-case letters, digits, dots and dashes, e.g. cluster.local');
      }
      return renderKubePrometheusConfig({ scrapeIntervalMs: f.scrapeIntervalMs, trustDomain, generatedBy: `generated by mesh prometheus-config, trust domain ${trustDomain}` });
    },

    workloads: async () => (await import('./workload-list.js')).kubeWorkloads(await target.kube()),
    demo: async (f) => (await import('./demo.js')).kubeDemo(await target.kube(), f, options),
    launchWorkload: async () => {
      throw localOnly(o.command);
    },
    runWorkload: async () => {
      throw localOnly(o.command);
    },
    stopWorkloads: async () => {
      throw localOnly('stop');
    },
    // Through a port-forward to mesh-control with the kubeconfig user's token or client certificate: the control plane
    // checks RBAC on tap.
    async openTap(query) {
      const control = await forwardToControl();
      if (!control.bearer && !control.certificateUser) {
        await control.close();
        throw new MeshError(`tap on Kubernetes needs a kubeconfig user with a client certificate or a bearer token; context ${(await target.kube()).contextName} has neither`,
          'use a user with a certificate, a token, an exec or OIDC plugin, e.g. a ServiceAccount bound to mesh:tap-admin (kubectl create token NAME)');
      }
      const call = async <T>(path: string, method = 'GET'): Promise<T> => answer(await control.request<T & { error?: string }>(method, path, { timeoutMs: 15_000 }));
      const answer = <T>(r: { status: number; body: T & { error?: string } }): T => {
        if (r.status === 200) return r.body;
        const error = r.body?.error ?? `HTTP ${r.status}`;
        if (r.status === 403) throw new MeshError(error, tapBindingHint(error));
        if (r.status === 401) {
          throw new MeshError(`mesh-control did not accept your kubeconfig user: ${error}`, control.certificateUser
            ? 'mesh-control verifies client certificates with the client-ca-file of configmap kube-system/extension-apiserver-authentication; use the kubeconfig the cluster gave you (kubectl config view --minify), or re-run mesh install if mesh-control cannot read that ConfigMap'
            : 'use a token the API server accepts (kubectl auth whoami)');
        }
        throw new MeshError(`the control plane answered ${r.status}: ${error}`, `kubectl -n mesh-system logs deploy/mesh-control`);
      };
      let first: TapPoll;
      try {
        first = await call<TapPoll>(`/v1/tap?${query}`);
      } catch (err) {
        await control.close();
        throw err;
      }
      // A control plane the forward reconnected to knows nothing of this tap (taps live in its memory): open it again.
      let id = first.id;
      let opened = control.reconnects;
      return {
        first,
        async poll(after, waitMs) {
          const path = `/v1/tap?id=${id}&after=${after}&waitMs=${waitMs}`;
          const r = await control.request<TapPoll & { error?: string }>('GET', path, { timeoutMs: 15_000 });
          if (r.status !== 404 || control.reconnects === opened) return answer(r);
          opened = control.reconnects;
          const again = await call<TapPoll>(`/v1/tap?${query}`);
          id = again.id;
          return again;
        },
        close: async () => {
          await call(`/v1/tap/${id}`, 'DELETE').catch(() => {});
          await control.close();
        },
      };
    },
    async dashboardBackend() {
      const control = await forwardToControl();
      const { MESH_BIN_PATH } = await import('../../dashboard/bin.js');
      const flags = [...(options.kubeconfig ? ['--kubeconfig', options.kubeconfig] : []), ...(options.context ? ['--context', options.context] : [])];
      return {
        get: (path) => control.request('GET', path, { timeoutMs: 15_000 }),
        checkArgs: [MESH_BIN_PATH, '--platform', 'kubernetes', ...flags, 'check', '-o', 'json'],
        close: () => void control.close(),
      };
    },
    identity: async () => {
      throw localOnly(o.command);
    },
  };
}
