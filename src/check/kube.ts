// What `mesh check --platform kubernetes` asks, as data for the same runner and renderer as the local checks:
// the API and its version, (with --pre) whether mesh can be installed, and then the installed control plane,
// its identity and the meshed pods. The real view reads the cluster (src/platform/kubernetes/check-view.ts).
import type { X509Certificate } from 'node:crypto';
import { bundleCerts, keyMatches, signerIn, validFrom, validTo } from '../identity/chain.js';
import type { Category, Checker } from './runner.js';
import { MIN_CA_LIFE_MS } from './local.js';
import { CLIENT_CA_NAMESPACE, CLIENT_CA_READER_ROLE, CONTROL_NAME } from '../platform/kubernetes/names.js';

export interface MeshedPod {
  namespace: string;
  name: string;
  /** The mesh.io/proxy-version annotation inject or the webhook wrote. */
  proxyVersion?: string;
  /** The mesh-proxy container's readiness from the pod status (undefined: no status for it yet). */
  proxyReady?: boolean;
  /** The trust anchors inject gave the proxy (its MESH_TRUST_ANCHORS), if any. */
  trustAnchorsPem?: string;
}

export interface KubeCheckView {
  now(): number;
  cliVersion: string;
  controlNamespace: string;
  /** Loads the kubeconfig (throws what is wrong with it). */
  connect(): Promise<void>;
  serverVersion(): Promise<{ gitVersion: string; major: number; minor: number; serverTime?: number }>;
  /** SelfSubjectAccessReview. */
  canI(verb: string, group: string, resource: string, namespace?: string): Promise<boolean>;
  namespaces(): Promise<{ name: string; labels: Record<string, string> }[]>;
  missingCrds(): Promise<string[]>;
  controlDeployment(): Promise<{ ready: number; want: number; version?: string } | undefined>;
  identity(): Promise<{ anchorsPem?: string; issuerCertPem?: string; issuerKeyPem?: string }>;
  webhook(): Promise<{ caBundlePem?: string; servingCertPem?: string; configured: boolean }>;
  meshedPods(): Promise<MeshedPod[]>;
  /** The RoleBinding that lets mesh-control read the cluster's client CA (kube-system), if it exists. */
  clientCaBinding(): Promise<{ roleRef: { kind?: string; name?: string }; subjects: { kind?: string; name?: string; namespace?: string }[] } | undefined>;
}

/** Native sidecars (init containers with restartPolicy: Always) are on by default from Kubernetes 1.29. */
export const MIN_KUBE = { major: 1, minor: 29 };
/** Larger clock differences break certificate validity at the edges (Linkerd warns at 5 minutes). */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

const iso = (ms: number) => new Date(ms).toISOString();
const days = (ms: number) => Math.floor(ms / 86_400_000);

function fail(problems: string[]): void {
  if (problems.length) throw new Error(problems.join('\n'));
}

const api: Checker<KubeCheckView>[] = [
  {
    description: 'can initialize the client',
    hint: 'k8s-api',
    fatal: true,
    check: (v) => v.connect(),
  },
  {
    description: 'can query the Kubernetes API',
    hint: 'k8s-api',
    fatal: true,
    retry: true,
    check: async (v) => void (await v.serverVersion()),
  },
];

const version: Checker<KubeCheckView>[] = [
  {
    description: `is running the minimum Kubernetes API version (${MIN_KUBE.major}.${MIN_KUBE.minor}, native sidecars)`,
    hint: 'k8s-version',
    check: async (v) => {
      const s = await v.serverVersion();
      if (s.major < MIN_KUBE.major || (s.major === MIN_KUBE.major && s.minor < MIN_KUBE.minor)) {
        throw new Error(`the cluster runs ${s.gitVersion}; the mesh proxy runs as a native sidecar, which needs ${MIN_KUBE.major}.${MIN_KUBE.minor} or later`);
      }
    },
  },
];

const CLUSTER_KINDS: [string, string, string][] = [
  ['apiextensions.k8s.io', 'customresourcedefinitions', 'CustomResourceDefinitions'],
  ['rbac.authorization.k8s.io', 'clusterroles', 'ClusterRoles'],
  ['rbac.authorization.k8s.io', 'clusterrolebindings', 'ClusterRoleBindings'],
  ['admissionregistration.k8s.io', 'mutatingwebhookconfigurations', 'MutatingWebhookConfigurations'],
  ['', 'namespaces', 'Namespaces'],
];
const NAMESPACED_KINDS: [string, string, string][] = [
  ['', 'serviceaccounts', 'ServiceAccounts'],
  ['apps', 'deployments', 'Deployments'],
  ['', 'services', 'Services'],
  ['', 'secrets', 'Secrets'],
  ['', 'configmaps', 'ConfigMaps'],
];

async function cannot(v: KubeCheckView, verb: string, kinds: [string, string, string][], namespace?: string): Promise<string[]> {
  const out: string[] = [];
  for (const [group, resource, name] of kinds) {
    if (!(await v.canI(verb, group, resource, namespace))) out.push(`cannot ${verb} ${name}${namespace ? ` in namespace ${namespace}` : ''}`);
  }
  return out;
}

const preSetup: Checker<KubeCheckView>[] = [
  {
    description: 'control plane namespace does not already exist',
    hint: 'pre-k8s-cluster-k8s',
    check: async (v) => {
      if ((await v.namespaces()).some((n) => n.name === v.controlNamespace)) {
        throw new Error(`namespace ${v.controlNamespace} exists: mesh is installed (mesh check), or remove it first`);
      }
    },
  },
  {
    description: 'can create non-namespaced resources',
    hint: 'pre-k8s-cluster-k8s',
    check: async (v) => fail(await cannot(v, 'create', CLUSTER_KINDS)),
  },
  {
    description: 'can create namespaced resources',
    hint: 'pre-k8s-cluster-k8s',
    check: async (v) => fail(await cannot(v, 'create', NAMESPACED_KINDS, v.controlNamespace)),
  },
  {
    description: 'can read Secrets',
    hint: 'pre-k8s-secrets',
    check: async (v) => fail(await cannot(v, 'get', [['', 'secrets', 'Secrets']], v.controlNamespace)),
  },
  {
    description: 'no clock skew detected',
    hint: 'pre-k8s-clock-skew',
    warning: true,
    check: async (v) => {
      const { serverTime } = await v.serverVersion();
      if (serverTime === undefined) return;
      const skew = Math.abs(v.now() - serverTime);
      if (skew > MAX_CLOCK_SKEW_MS) throw new Error(`this machine's clock is ${Math.round(skew / 1000)} s off the API server's: certificates may look not yet valid or expired`);
    },
  },
];

const preCapability: Checker<KubeCheckView>[] = [
  {
    description: 'namespaces allow the mesh-init container (NET_ADMIN, NET_RAW)',
    hint: 'pre-k8s-cluster-net-admin',
    warning: true,
    check: async (v) => {
      // Pod Security Admission: baseline and restricted both refuse NET_ADMIN, so injected pods there fail.
      const strict = (await v.namespaces())
        .filter((n) => !['kube-system', 'kube-public', 'kube-node-lease', v.controlNamespace].includes(n.name))
        .filter((n) => ['baseline', 'restricted'].includes(n.labels['pod-security.kubernetes.io/enforce'] ?? ''))
        .map((n) => `namespace ${n.name} enforces Pod Security "${n.labels['pod-security.kubernetes.io/enforce']}": injected pods there are refused (mesh-init needs NET_ADMIN and NET_RAW)`);
      fail(strict);
    },
  },
];

const existence: Checker<KubeCheckView>[] = [
  {
    description: 'mesh CRDs are installed',
    hint: 'mesh-crds',
    fatal: true,
    check: async (v) => {
      const missing = await v.missingCrds();
      if (missing.length) throw new Error(`missing ${missing.join(', ')}: run mesh install --crds`);
    },
  },
  {
    description: 'control plane namespace exists',
    hint: 'mesh-namespace',
    fatal: true,
    check: async (v) => {
      const ns = (await v.namespaces()).find((n) => n.name === v.controlNamespace);
      if (!ns) throw new Error(`namespace ${v.controlNamespace} does not exist: run mesh install`);
      if (ns.labels['app.kubernetes.io/part-of'] !== 'mesh') throw new Error(`namespace ${v.controlNamespace} is not labelled as mesh's: another install is there`);
    },
  },
  {
    description: 'control plane is ready',
    hint: 'mesh-control-ready',
    retry: true,
    check: async (v) => {
      const d = await v.controlDeployment();
      if (!d) throw new Error(`deployment ${v.controlNamespace}/mesh-control does not exist: run mesh install`);
      // Scaled to 0 is 0/0 ready, and no control plane.
      if (d.want < 1) throw new Error(`deployment ${v.controlNamespace}/mesh-control is scaled to 0: kubectl scale -n ${v.controlNamespace} deploy/mesh-control --replicas=1`);
      if (d.ready < d.want) throw new Error(`${d.ready}/${d.want} replicas of mesh-control are ready`);
    },
  },
  {
    description: 'proxy injector webhook is configured with the CA of its serving certificate',
    hint: 'mesh-webhook',
    check: async (v) => {
      const w = await v.webhook();
      if (!w.configured) throw new Error('MutatingWebhookConfiguration mesh-proxy-injector does not exist: run mesh install');
      const ca = bundleCerts(w.caBundlePem ?? '');
      const [serving] = bundleCerts(w.servingCertPem ?? '');
      if (!ca.length) throw new Error('the webhook has no caBundle: the API server cannot call it');
      if (!serving) throw new Error('secret mesh-webhook-tls holds no certificate');
      if (!signerIn(serving, ca)) throw new Error("the webhook's caBundle did not sign its serving certificate: the API server will refuse it (run mesh install --apply again)");
      if (validTo(serving) <= v.now()) throw new Error(`the webhook's serving certificate expired on ${iso(validTo(serving))}`);
    },
  },
  {
    // tap verifies a kubeconfig user's client certificate against the cluster's client CA, which mesh-control reads
    // from kube-system: an install from before this binding existed refuses those users with 401.
    description: "mesh-control can read the cluster's client CA",
    hint: 'mesh-client-ca',
    check: async (v) => {
      const b = await v.clientCaBinding();
      const where = `RoleBinding ${CLIENT_CA_NAMESPACE}/mesh:${CONTROL_NAME}:client-ca`;
      const fix = "tap refuses users who authenticate with a client certificate (401): run 'mesh --platform kubernetes install --apply' to add it";
      if (!b) throw new Error(`${where} does not exist (an install older than this CLI): ${fix}`);
      if (b.roleRef.kind !== 'Role' || b.roleRef.name !== CLIENT_CA_READER_ROLE) throw new Error(`${where} binds ${b.roleRef.kind ?? '?'} ${b.roleRef.name ?? '?'}, not Role ${CLIENT_CA_READER_ROLE}: ${fix}`);
      if (!b.subjects.some((s) => s.kind === 'ServiceAccount' && s.name === CONTROL_NAME && s.namespace === v.controlNamespace)) throw new Error(`${where} does not name ServiceAccount ${v.controlNamespace}/${CONTROL_NAME}: ${fix}`);
    },
  },
];

const meshVersion: Checker<KubeCheckView>[] = [
  {
    description: 'control plane and CLI versions match',
    hint: 'mesh-version',
    warning: true,
    check: async (v) => {
      const d = await v.controlDeployment();
      if (d?.version && d.version !== v.cliVersion) throw new Error(`the control plane is ${d.version}, the CLI is ${v.cliVersion}: mesh install --apply with this CLI upgrades it`);
    },
  },
];

async function certs(v: KubeCheckView): Promise<{ anchors: X509Certificate[]; issuer?: X509Certificate; keyPem?: string }> {
  const id = await v.identity();
  if (!id.anchorsPem) throw new Error('configmap mesh-identity-trust-roots holds no ca-bundle.crt');
  const anchors = bundleCerts(id.anchorsPem);
  if (!anchors.length) throw new Error('the trust anchor bundle holds no certificate');
  return { anchors, issuer: bundleCerts(id.issuerCertPem ?? '')[0], keyPem: id.issuerKeyPem };
}

function validity(cs: X509Certificate[], what: (i: number) => string, now: number, minLife = 0): string[] {
  return cs.flatMap((c, i) => {
    if (now < validFrom(c)) return [`${what(i)} is not valid before ${iso(validFrom(c))}`];
    if (now > validTo(c)) return [`${what(i)} expired on ${iso(validTo(c))}`];
    if (validTo(c) - now < minLife) return [`${what(i)} expires on ${iso(validTo(c))}, in ${days(validTo(c) - now)} days`];
    return [];
  });
}

const anchorName = (n: number) => (i: number) => (n === 1 ? 'the trust anchor' : `trust anchor ${i + 1} of ${n}`);
const needIssuer = (c: { issuer?: X509Certificate }) => {
  if (!c.issuer) throw new Error('secret mesh-identity-issuer holds no tls.crt');
  return c.issuer;
};

const identity: Checker<KubeCheckView>[] = [
  {
    description: 'trust anchors are within their validity period',
    hint: 'identity-anchor-valid',
    check: async (v) => {
      const { anchors } = await certs(v);
      fail(validity(anchors, anchorName(anchors.length), v.now()));
    },
  },
  {
    description: 'trust anchors are valid for at least 60 days',
    hint: 'identity-anchor-expiring',
    warning: true,
    check: async (v) => {
      const { anchors } = await certs(v);
      fail(validity(anchors, anchorName(anchors.length), v.now(), MIN_CA_LIFE_MS));
    },
  },
  {
    description: 'issuer certificate is within its validity period',
    hint: 'identity-issuer-valid',
    check: async (v) => fail(validity([needIssuer(await certs(v))], () => 'the issuer certificate', v.now())),
  },
  {
    description: 'issuer certificate is valid for at least 60 days',
    hint: 'identity-issuer-expiring',
    warning: true,
    check: async (v) => fail(validity([needIssuer(await certs(v))], () => 'the issuer certificate', v.now(), MIN_CA_LIFE_MS)),
  },
  {
    description: 'issuer certificate is issued by the trust anchor',
    hint: 'identity-issuer-signed',
    check: async (v) => {
      const c = await certs(v);
      const issuer = needIssuer(c);
      const problems: string[] = [];
      if (!issuer.ca) problems.push('the issuer certificate is not a CA certificate');
      if (!signerIn(issuer, c.anchors)) problems.push('the issuer is not signed by any trust anchor in the bundle');
      if (!c.keyPem || !keyMatches(issuer, c.keyPem)) problems.push('the issuer key does not belong to the issuer certificate');
      fail(problems);
    },
  },
];

const dataPlane: Checker<KubeCheckView>[] = [
  {
    description: 'data plane proxies are ready',
    hint: 'data-plane-ready',
    retry: true,
    check: async (v) => fail((await v.meshedPods()).filter((p) => p.proxyReady === false).map((p) => `${p.namespace}/${p.name}: mesh-proxy is not ready`)),
  },
  {
    // A proxy injected before the trust anchors were replaced (a second install that generated new ones) cannot
    // verify a certificate of the installed issuer: its calls fail while everything else looks healthy.
    description: 'data plane proxies trust the installed issuer',
    hint: 'data-plane-anchors',
    check: async (v) => {
      const c = await certs(v);
      const signers = c.issuer ? c.anchors.filter((a) => signerIn(c.issuer!, [a])) : c.anchors;
      const known = new Set(signers.map((a) => a.fingerprint256));
      fail((await v.meshedPods()).filter((p) => p.trustAnchorsPem !== undefined && !bundleCerts(p.trustAnchorsPem).some((a) => known.has(a.fingerprint256)))
        .map((p) => `${p.namespace}/${p.name}: its proxy holds other trust anchors than the installed ones: restart the pod (kubectl rollout restart) to re-inject, or reinstall with the anchors it holds`));
    },
  },
  {
    description: 'data plane proxies run the CLI\'s version',
    hint: 'data-plane-version',
    warning: true,
    check: async (v) => fail((await v.meshedPods()).filter((p) => p.proxyVersion !== v.cliVersion)
      .map((p) => `${p.namespace}/${p.name}: proxy ${p.proxyVersion ?? '(unknown)'}, CLI ${v.cliVersion}: restart the pod (kubectl rollout restart) to re-inject`)),
  },
];

export const KUBE_PRE_CATEGORIES: Category<KubeCheckView>[] = [
  { name: 'kubernetes-api', checkers: api },
  { name: 'kubernetes-version', checkers: version },
  { name: 'pre-kubernetes-setup', checkers: preSetup },
  { name: 'pre-kubernetes-capability', checkers: preCapability },
];

export const KUBE_CATEGORIES: Category<KubeCheckView>[] = [
  { name: 'kubernetes-api', checkers: api },
  { name: 'kubernetes-version', checkers: version },
  { name: 'mesh-existence', checkers: existence },
  { name: 'mesh-version', checkers: meshVersion },
  { name: 'mesh-identity', checkers: identity },
  { name: 'mesh-data-plane', checkers: dataPlane },
];
