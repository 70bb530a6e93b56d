// In-process fake Kubernetes API server for tests. Code under test talks to it with @kubernetes/client-node through
// a real kubeconfig (HTTPS with a generated certificate, bearer token), exactly as to a cluster:
//
//   const kube = await startFakeApiServer({ deny: [{ verb: 'create', group: 'apps', resource: 'deployments' }] });
//   process.env.KUBECONFIG = kube.writeKubeconfig(tmpDir);      // or KubeConfig.loadFromString(kube.kubeconfigYaml)
//   kube.store.setStatus({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'x', namespace: 'mesh' }, { readyReplicas: 1 });
//   await kube.close();
//
// Like a fresh cluster it starts with default, kube-system, kube-public, kube-node-lease and default/kubernetes, and
// new namespaces get a "default" ServiceAccount and a kube-root-ca.crt ConfigMap (options turn both off).
//
// Simplified compared to a real API server (on purpose, to stay small and deterministic):
// - deletion is immediate (no graceful pod termination, namespaces/CRDs are removed with their contents at once);
//   metadata.finalizers are honoured (deletionTimestamp set, removed when the last finalizer goes);
// - list pagination reads the current state, not a snapshot; list resourceVersion/resourceVersionMatch are ignored;
// - server-side apply tracks managedFields with real conflicts, but lists other than the well-known keyed ones are atomic;
// - strategic merge patch knows merge keys by field name only; CRD schemas get pruning and basic validation, no CEL;
// - no controllers beyond the namespace one: Deployments never get Pods, status only changes through the store;
// - authorization is allow-all minus a deny list, enforced on requests and reported by (Self)SubjectAccessReview.
import { writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Authority, type DenyRule, type TokenIdentity, type UserInfo } from './auth.js';
import { FakeStore } from './fake-store.js';
import { handle, type RecordedRequest } from './router.js';
import { handleUpgrade } from './port-forward.js';
import { ObjectStore } from './store.js';
import { clientCa, clientCert, servingCert, type ClientCa } from './tls.js';
import type { KubeObject } from './types.js';
import { WatchHub } from './watch.js';

export type { DenyRule, TokenIdentity, UserInfo } from './auth.js';
export type { ObjectRef } from './fake-store.js';
export type { RecordedRequest } from './router.js';
export { FakeStore } from './fake-store.js';
export { StatusError, type KubeObject } from './types.js';

export interface FakeApiServerOptions {
  /** Reported by /version; default v1.31.0. */
  gitVersion?: string;
  /** Serve HTTPS with a generated CA (default) or plain HTTP (the kubeconfig then says insecure-skip-tls-verify). */
  tls?: boolean;
  /** The kubeconfig's bearer token; random by default. */
  token?: string;
  /** Who the kubeconfig token authenticates as; default kubernetes-admin in system:masters. */
  user?: UserInfo;
  /** Requests matching these are 403 Forbidden and SelfSubjectAccessReview says allowed:false. Default: allow all. */
  deny?: DenyRule[];
  /** TokenReview answers, token → identity (e.g. system:serviceaccount:NS:SA). These tokens also authenticate requests. */
  tokenReviews?: Record<string, TokenIdentity>;
  /** Service proxy backends: "ns/name:port" (or "ns/name") → "http://127.0.0.1:NNNN". */
  serviceProxy?: Record<string, string>;
  /** pods/portforward backends: "ns/pod:port" → "127.0.0.1:NNNN" (a WebSocket per connection, as client-node's PortForward speaks). */
  portForwards?: Record<string, string>;
  /** Namespace of the kubeconfig context; default "default". */
  namespace?: string;
  /** Cluster/context name in the kubeconfig; default "fake". */
  contextName?: string;
  /** Watch history length; older resourceVersions get 410 Gone. Default 1000 events. */
  historyLimit?: number;
  /** Periodic BOOKMARK interval for watches that allow them; 0 (default) sends them only via sendBookmarks()/timeouts. */
  bookmarkIntervalMs?: number;
  /** Let requests without any token through as system:anonymous (still 401 for a wrong token). Default false. */
  anonymous?: boolean;
  /** Create default, kube-system, kube-public, kube-node-lease and the default/kubernetes Service. Default true. */
  seedDefaults?: boolean;
  /** Namespace controller: each new namespace gets a "default" ServiceAccount and a kube-root-ca.crt ConfigMap. Default true. */
  namespaceDefaults?: boolean;
  /**
   * Authenticate client certificates of a client CA (userKubeconfig makes them), published as a real API server does
   * in ConfigMap kube-system/extension-apiserver-authentication (client-ca-file). TLS only; default false.
   */
  clientCertificates?: boolean;
}

export interface FakeApiServer {
  url: string;
  token: string;
  /** PEM of the CA that signed the serving certificate (TLS only). */
  caPem?: string;
  kubeconfigYaml: string;
  /** PEM of the client CA (with clientCertificates). */
  clientCaPem?: string;
  /**
   * A kubeconfig whose user authenticates with a client certificate only (clientCertificates): CN user, O groups,
   * from the server's client CA, or another CA's (`ca`), expired, or with a URI SAN.
   */
  userKubeconfig(user: string, groups?: string[], o?: { ca?: ClientCa; expired?: boolean; uri?: string }): string;
  /** Writes the kubeconfig to dir/kubeconfig (mode 600) and returns its path (synchronously, for easy env setup). */
  writeKubeconfig(dir: string): string;
  store: FakeStore;
  /** Live-editable policy: push/splice deny rules, set/delete TokenReview tokens. */
  deny: DenyRule[];
  tokens: Map<string, TokenIdentity>;
  serviceProxy: Map<string, string>;
  portForwards: Map<string, string>;
  /** The last 1000 requests (method, path, query, content type, user), for asserting what a client sent. */
  requests: RecordedRequest[];
  /**
   * beforeRequest runs before each request is handled (its method, path and query known): a test can change the
   * store there to play another client writing between two of the client's requests. Set and unset at will.
   */
  hooks: { beforeRequest?: (r: RecordedRequest) => void | Promise<void> };
  /** Forget the watch history: any watch (re)started from an older resourceVersion gets 410 Gone. */
  compactHistory(): void;
  /** End all open watches, gracefully (default: clients see the stream end and re-watch) or abruptly (socket reset). */
  cutWatches(opts?: { abrupt?: boolean }): void;
  /** Send a BOOKMARK now on every watch that allowed bookmarks. */
  sendBookmarks(): void;
  readonly openWatches: number;
  close(): Promise<void>;
}

function versionInfo(gitVersion: string) {
  const m = /^v(\d+)\.(\d+)/.exec(gitVersion);
  return {
    major: m?.[1] ?? '1', minor: m?.[2] ?? '0', gitVersion, gitCommit: '0000000000000000000000000000000000000000', gitTreeState: 'clean',
    buildDate: '2024-08-13T07:28:49Z', goVersion: 'go1.22.5', compiler: 'gc', platform: 'linux/amd64',
  };
}

function kubeconfig(name: string, url: string, token: string | { certPem: string; keyPem: string }, namespace: string, caPem: string | undefined): string {
  const b64 = (x: string) => Buffer.from(x).toString('base64');
  const user = typeof token === 'string' ? `token: ${token}` : `client-certificate-data: ${b64(token.certPem)}\n    client-key-data: ${b64(token.keyPem)}`;
  // client-node refuses http:// servers unless the kubeconfig opts out of TLS verification.
  const ca = caPem ? `\n    certificate-authority-data: ${Buffer.from(caPem).toString('base64')}` : '\n    insecure-skip-tls-verify: true';
  return `apiVersion: v1
kind: Config
preferences: {}
clusters:
- name: ${name}
  cluster:
    server: ${url}${ca}
contexts:
- name: ${name}
  context:
    cluster: ${name}
    user: ${name}-admin
    namespace: ${namespace}
current-context: ${name}
users:
- name: ${name}-admin
  user:
    ${user}
`;
}

function seed(store: FakeStore): void {
  for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
    store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  }
  store.create({
    apiVersion: 'v1', kind: 'Service',
    metadata: { name: 'kubernetes', namespace: 'default', labels: { component: 'apiserver', provider: 'kubernetes' } },
    spec: { clusterIP: '10.96.0.1', ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: 6443 }] },
  });
}

const ROOT_CA_DESCRIPTION = 'Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.';

/** The namespace controllers' visible effect, run after the namespace's ADDED event like a real (async) controller. */
function namespaceController(inner: ObjectStore, store: FakeStore, caPem: string): void {
  const populate = (namespace: string) => {
    if (!inner.namespaceExists(namespace)) return;
    const missing = (kind: string, name: string) => store.get({ apiVersion: 'v1', kind, name, namespace }) === undefined;
    if (missing('ServiceAccount', 'default')) store.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace } });
    if (missing('ConfigMap', 'kube-root-ca.crt')) {
      store.create({
        apiVersion: 'v1', kind: 'ConfigMap', data: { 'ca.crt': caPem },
        metadata: { name: 'kube-root-ca.crt', namespace, annotations: { 'kubernetes.io/description': ROOT_CA_DESCRIPTION } },
      });
    }
  };
  inner.subscribe((e) => {
    if (e.type !== 'ADDED' || e.group !== '' || e.plural !== 'namespaces') return;
    const namespace = e.object.metadata.name ?? '';
    queueMicrotask(() => {
      try {
        populate(namespace);
      } catch {
        // Lost a race with the test (e.g. it created them first); a real controller would retry, nothing to do here.
      }
    });
  });
}

export async function startFakeApiServer(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
  const useTls = opts.tls ?? true;
  const cert = useTls ? servingCert() : undefined;
  const token = opts.token ?? randomBytes(24).toString('base64url');
  const inner = new ObjectStore(opts.historyLimit ?? 1000);
  const store = new FakeStore(inner);
  const hub = new WatchHub(inner, opts.bookmarkIntervalMs ?? 0);
  const auth = new Authority(token, opts.user ?? { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] }, opts.deny, opts.tokenReviews);
  const backends = new Map(Object.entries(opts.serviceProxy ?? {}));
  const requests: RecordedRequest[] = [];
  const hooks: FakeApiServer['hooks'] = {};
  const deps = { store: inner, hub, auth, backends, versionInfo: versionInfo(opts.gitVersion ?? 'v1.31.0'), anonymous: opts.anonymous ?? false, requests, hooks };

  if (opts.namespaceDefaults ?? true) namespaceController(inner, store, cert?.caPem ?? '');
  if (opts.seedDefaults ?? true) seed(store);
  await Promise.resolve(); // let the namespace controller finish seeding

  const listener = (req: Parameters<typeof handle>[1], res: Parameters<typeof handle>[2]) => void handle(deps, req, res);
  const userCa = cert && opts.clientCertificates ? clientCa() : undefined;
  if (userCa) {
    store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'extension-apiserver-authentication', namespace: 'kube-system' }, data: { 'client-ca-file': userCa.certPem } });
  }
  const tlsOptions = { key: cert?.keyPem, cert: cert?.certPem, ...(userCa ? { ca: userCa.certPem, requestCert: true, rejectUnauthorized: false } : {}) };
  const server: Server = cert ? createHttpsServer(tlsOptions, listener) : createHttpServer(listener);
  const portForwards = new Map(Object.entries(opts.portForwards ?? {}));
  server.on('upgrade', (req, socket, head) => handleUpgrade({ store: inner, auth, portForwards, anonymous: deps.anonymous }, req, socket, head));
  // Every socket from its accept on: closeAllConnections misses one still in its TLS handshake, which could then
  // open a watch that keeps close() (and the test file) waiting for ever.
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (sock: import('node:net').Socket) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `${cert ? 'https' : 'http'}://127.0.0.1:${port}`;
  const kubeconfigYaml = kubeconfig(opts.contextName ?? 'fake', url, token, opts.namespace ?? 'default', cert?.caPem);
  let closed: Promise<void> | undefined;

  return {
    url, token, caPem: cert?.caPem, kubeconfigYaml, store, requests, hooks, clientCaPem: userCa?.certPem,
    userKubeconfig: (user, groups = [], o = {}) => kubeconfig(opts.contextName ?? 'fake', url, clientCert(user, groups, { ca: o.ca ?? userCa, ...o }), opts.namespace ?? 'default', cert?.caPem),
    deny: auth.deny, tokens: auth.tokens, serviceProxy: backends, portForwards,
    writeKubeconfig(dir: string) {
      const path = join(dir, 'kubeconfig');
      writeFileSync(path, kubeconfigYaml, { mode: 0o600 });
      return path;
    },
    compactHistory: () => inner.compact(),
    cutWatches: (o = {}) => hub.cutAll(o.abrupt ?? false),
    sendBookmarks: () => hub.bookmarkAll(),
    get openWatches() {
      return hub.openCount;
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        hub.cutAll(false);
        server.close(() => resolve());
        server.closeAllConnections();
        for (const sock of sockets) sock.destroy();
      });
      return closed;
    },
  };
}

/** Convenience for tests: the object with server-populated fields removed, for deepEqual against what was sent. */
export function withoutServerFields(obj: KubeObject): KubeObject {
  const { uid: _u, resourceVersion: _r, generation: _g, creationTimestamp: _c, managedFields: _m, ...metadata } = obj.metadata;
  return { ...obj, metadata };
}
