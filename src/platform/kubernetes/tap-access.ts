// Tap on Kubernetes, authorized as Linkerd's tap APIService does it: RBAC on a tap resource of its own API group
// (verb watch on deployments/tap, pods/tap, services/tap, namespaces/tap in tap.mesh.io; `mesh install` renders the
// mesh:tap-admin ClusterRole for it). The CLI reaches mesh-control through a port-forward with the kubeconfig user's
// credential: a bearer token, which the API server names (TokenReview), or a client certificate in the CLI's own TLS
// handshake, which mesh-control verifies against the cluster's client CA (the client-ca-file the API server publishes
// in kube-system/extension-apiserver-authentication; never the mesh's trust anchors): CN is the user, O the groups,
// as the API server reads it. Then a SubjectAccessReview per resource. Answers are cached briefly: a tap polls.
import { createHash, type X509Certificate } from 'node:crypto';
import type { KubeClient } from './client.js';
import type { TapAccess, TapCaller } from '../../control/tap-access.js';
import type { TapTarget } from '../../control/tap.js';
import { bundleCerts, signerIn, validityError } from '../../identity/chain.js';
import { uriSans } from '../../identity/spiffe.js';
import { ListWatch } from './list-watch.js';
import { CLIENT_CA_CONFIGMAP, CLIENT_CA_NAMESPACE, CLIENT_CA_READER_ROLE, TAP_GROUP } from './names.js';

const CLIENT_CA_WHERE = `configmap ${CLIENT_CA_NAMESPACE}/${CLIENT_CA_CONFIGMAP}`;
const CLIENT_AUTH_EKU = '1.3.6.1.5.5.7.3.2';
/** Intermediates a client chain may have before a CA of the bundle. */
const MAX_CHAIN = 4;
/** A ConfigMap that cannot be read (RBAC missing, API server away) is tried again this often. */
const CLIENT_CA_RETRY_MS = 30_000;

/**
 * A kubeconfig client certificate (with the intermediates the client sent) verified as the API server's x509
 * authenticator does: issued under one of `cas`, valid now, for clientAuth. The user, or why not in one line.
 */
export function kubeCertificateUser(chain: X509Certificate[], cas: X509Certificate[], now = Date.now()): TapCaller | { refused: string } {
  const leaf = chain[0];
  if (!leaf) return { refused: 'no client certificate was presented' };
  const sans = (() => {
    try {
      return uriSans(leaf.raw);
    } catch {
      return [];
    }
  })();
  if (sans.some((u) => u.toLowerCase().startsWith('spiffe://'))) return { refused: `a mesh workload certificate (${sans[0]}) is not a Kubernetes user` };
  if (leaf.ca) return { refused: 'the client certificate is a CA certificate' };
  if (!leaf.keyUsage?.includes(CLIENT_AUTH_EKU)) return { refused: 'the client certificate has no clientAuth extended key usage' };
  const invalid = validityError(leaf, 'the client certificate', now);
  if (invalid) return { refused: invalid };
  if (!cas.length) return { refused: `mesh-control has no client CA of the cluster (${CLIENT_CA_WHERE} unread or without client-ca-file)` };
  let cur = leaf;
  for (let depth = 0; ; depth++) {
    const root = signerIn(cur, cas);
    if (root) {
      const bad = validityError(root, 'the cluster\'s client CA', now);
      if (bad) return { refused: bad };
      break;
    }
    const next = depth < MAX_CHAIN ? signerIn(cur, chain.slice(1).filter((c) => c.ca && c !== cur)) : undefined;
    if (!next) return { refused: `the client certificate was not issued by the cluster's client CA (client-ca-file in ${CLIENT_CA_WHERE})` };
    const bad = validityError(next, 'an intermediate of the client certificate', now);
    if (bad) return { refused: bad };
    cur = next;
  }
  const subject = leaf.toLegacyObject().subject as unknown as Record<string, string | string[] | undefined>;
  const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
  const name = list(subject.CN)[0];
  if (!name) return { refused: 'the client certificate has no common name (CN), the Kubernetes user name' };
  return { name, admin: false, groups: [...list(subject.O), 'system:authenticated'] };
}

interface CaConfigMap {
  metadata?: { name?: string };
  data?: Record<string, string>;
}

/**
 * The cluster's client CA bundle, kept by a watch of its ConfigMap (a rotated CA is picked up with no request of
 * tap's going to the API server); one that cannot be read is tried again every 30 s, said once in the log.
 */
export class KubeClientCa {
  cas: X509Certificate[] = [];
  private watch?: ListWatch<CaConfigMap>;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private said = '';

  constructor(private readonly kube: KubeClient, private readonly log: (line: string) => void = () => {}) {}

  start(): void {
    if (this.stopped) return;
    const path = `/api/v1/namespaces/${CLIENT_CA_NAMESPACE}/configmaps?fieldSelector=${encodeURIComponent(`metadata.name=${CLIENT_CA_CONFIGMAP}`)}`;
    const w = new ListWatch<CaConfigMap>(this.kube.kc, path, () => this.load(w), { log: this.log, maxRetryMs: CLIENT_CA_RETRY_MS });
    this.watch = w;
    w.start().catch((err: Error) => {
      w.stop();
      this.say(`cannot read ${CLIENT_CA_WHERE} (${err.message}); tap by client certificate is refused until it can (mesh-control needs a RoleBinding to Role ${CLIENT_CA_READER_ROLE} there: re-run mesh install)`);
      this.timer = setTimeout(() => this.start(), CLIENT_CA_RETRY_MS);
      this.timer.unref();
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.watch?.stop();
  }

  private load(w: ListWatch<CaConfigMap>): void {
    const pem = [...w.items.values()][0]?.data?.['client-ca-file'] ?? '';
    try {
      this.cas = pem ? bundleCerts(pem).filter((c) => c.ca) : [];
      this.say(pem ? `client CA of the cluster: ${this.cas.length} certificate(s) from ${CLIENT_CA_WHERE}` : `${CLIENT_CA_WHERE} has no client-ca-file: tap by client certificate is refused`);
    } catch (err) {
      this.say(`the client-ca-file in ${CLIENT_CA_WHERE} cannot be parsed (${(err as Error).message}); keeping the last one`);
    }
  }

  private say(line: string): void {
    if (line !== this.said) this.log(`control: ${line}`);
    this.said = line;
  }
}

const TAP_VERSION = 'v1alpha1';
const PLURAL: Record<TapTarget['kind'], string> = { deploy: 'deployments', pod: 'pods', svc: 'services', ns: 'namespaces' };
const CACHE_MS = 30_000;
/** A refusal is kept briefly: the user who was just told which binding is missing tries again once it is made. */
const DENIED_CACHE_MS = 3_000;
const CACHE_MAX = 1000;

interface TokenReview {
  status?: { authenticated?: boolean; error?: string; user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> } };
}
interface SubjectAccessReview {
  status?: { allowed?: boolean; denied?: boolean; reason?: string; evaluationError?: string };
}

export function kubeTapAccess(kube: KubeClient, o: { log?: (line: string) => void; clientCa?: KubeClientCa } = {}): TapAccess {
  const users = new Map<string, { at: number; user?: TapCaller }>();
  const decisions = new Map<string, { at: number; allowed: boolean; reason?: string }>();
  const remember = <V>(m: Map<string, V>, k: string, v: V) => {
    if (m.size >= CACHE_MAX) m.clear();
    m.set(k, v);
  };
  return {
    async authenticate(bearer) {
      const key = createHash('sha256').update(bearer).digest('hex');
      const hit = users.get(key);
      if (hit && Date.now() - hit.at < CACHE_MS) return hit.user;
      const r = await kube.post<TokenReview>('/apis/authentication.k8s.io/v1/tokenreviews',
        { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: bearer } }, 'review a tap caller\'s token');
      const u = r.status?.authenticated ? r.status.user : undefined;
      const user = u?.username ? { name: u.username, admin: false, groups: u.groups, uid: u.uid, extra: u.extra } : undefined;
      if (!user) o.log?.(`control: a tap caller's token was refused by the TokenReview: ${r.status?.error ?? 'not authenticated'}`);
      remember(users, key, { at: Date.now(), user });
      return user;
    },
    certificate: o.clientCa && ((chain) => kubeCertificateUser(chain, o.clientCa!.cas)),
    async authorize(user, t) {
      const resourceAttributes = {
        group: TAP_GROUP, version: TAP_VERSION, resource: PLURAL[t.kind], subresource: 'tap', verb: 'watch',
        namespace: t.namespace, ...(t.kind === 'ns' ? {} : { name: t.name }),
      };
      const key = JSON.stringify([user.name, user.groups, resourceAttributes]);
      const hit = decisions.get(key);
      if (hit && Date.now() - hit.at < (hit.allowed ? CACHE_MS : DENIED_CACHE_MS)) return hit;
      const r = await kube.post<SubjectAccessReview>('/apis/authorization.k8s.io/v1/subjectaccessreviews', {
        apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
        spec: { user: user.name, groups: user.groups, uid: user.uid, extra: user.extra, resourceAttributes },
      }, 'review a tap caller\'s access');
      const allowed = r.status?.allowed === true;
      const decision = {
        at: Date.now(), allowed,
        reason: allowed ? undefined : `RBAC needs verb watch on ${PLURAL[t.kind]}/tap in API group ${TAP_GROUP}${r.status?.reason ? ` (${r.status.reason})` : ''}`,
      };
      remember(decisions, key, decision);
      return decision;
    },
  };
}
