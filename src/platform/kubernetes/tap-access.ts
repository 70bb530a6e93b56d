// Tap on Kubernetes, authorized as Linkerd's tap APIService does it: RBAC on a tap resource of its own API group
// (verb watch on deployments/tap, pods/tap, services/tap, namespaces/tap in tap.mesh.io; `mesh install` renders the
// mesh:tap-admin ClusterRole for it). The CLI reaches mesh-control through a port-forward and sends the kubeconfig
// user's bearer token; the control plane asks the API server who that is (TokenReview) and whether they may tap the
// resource (SubjectAccessReview). Answers are cached briefly: a tap polls every few seconds.
import { createHash } from 'node:crypto';
import type { KubeClient } from './client.js';
import type { TapAccess, TapCaller } from '../../control/tap-access.js';
import type { TapTarget } from '../../control/tap.js';

import { TAP_GROUP } from './names.js';

const TAP_VERSION = 'v1alpha1';
const PLURAL: Record<TapTarget['kind'], string> = { deploy: 'deployments', pod: 'pods', svc: 'services', ns: 'namespaces' };
const CACHE_MS = 30_000;
const CACHE_MAX = 1000;

interface TokenReview {
  status?: { authenticated?: boolean; error?: string; user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> } };
}
interface SubjectAccessReview {
  status?: { allowed?: boolean; denied?: boolean; reason?: string; evaluationError?: string };
}

export function kubeTapAccess(kube: KubeClient, o: { log?: (line: string) => void } = {}): TapAccess {
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
    async authorize(user, t) {
      const resourceAttributes = {
        group: TAP_GROUP, version: TAP_VERSION, resource: PLURAL[t.kind], subresource: 'tap', verb: 'watch',
        namespace: t.namespace, ...(t.kind === 'ns' ? {} : { name: t.name }),
      };
      const key = JSON.stringify([user.name, user.groups, resourceAttributes]);
      const hit = decisions.get(key);
      if (hit && Date.now() - hit.at < CACHE_MS) return hit;
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
