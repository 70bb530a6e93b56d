// The CLI's way to mesh-control for what the API server's service proxy cannot carry (a tap's long-polls, the
// dashboard), as `linkerd viz dashboard` goes: a port-forward to a running mesh-control pod, the control plane
// verified by its SPIFFE identity under the installed trust anchors, and the kubeconfig user's own credential for the
// control plane to check: its bearer token (TokenReview), or its client certificate and key, presented in the CLI's
// own TLS handshake with mesh-control (the forward only carries bytes), verified there against the cluster's client CA.
// Then a SubjectAccessReview per tap.
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { ControlClient, ControlUnreachable, type ControlResponse } from '../../api/client.js';
import { MeshError } from '../../util/errors.js';
import type { KubeClient } from './client.js';
import { forwardPort } from './port-forward.js';
import { CONTROL_NAMESPACE, CONTROL_PORT, MESH_CONFIGMAP, PART_OF, TRUST_ROOTS_CONFIGMAP } from './names.js';

interface Pod {
  metadata?: { name?: string; deletionTimestamp?: Date };
  status?: { phase?: string; conditions?: { type: string; status: string }[] };
}

export interface ControlForward {
  /** The kubeconfig user's bearer token, when it has one (client-certificate users have none). */
  bearer?: string;
  /** The user the kubeconfig's client certificate names (its CN), when it has one and no token. */
  certificateUser?: string;
  /** A call through the forward; a forward that failed is said in one line. A GET on a forward that dropped is sent again once it is back. */
  request<T>(method: string, path: string, o?: { timeoutMs?: number }): Promise<ControlResponse<T>>;
  /** How many times the forward was opened again after it dropped (state the control plane kept, such as a tap, is gone). */
  readonly reconnects: number;
  close(): Promise<void>;
}

/** The TLS context that presents the kubeconfig user's client certificate to mesh-control (which verifies it), or none. */
function clientCertificate(cert: Buffer | string | undefined, key: Buffer | string | undefined, anchors: string, context: string): { context: tls.SecureContext; name: string } | undefined {
  if (!cert || !key) return undefined;
  try {
    const leaf = new X509Certificate(cert);
    const cn = /^CN=(.*)$/m.exec(leaf.subject)?.[1] ?? '(no CN)';
    return { context: tls.createSecureContext({ ca: anchors, cert, key, minVersion: 'TLSv1.3' }), name: cn };
  } catch (err) {
    throw new MeshError(`the client certificate and key of context ${context}'s user cannot be used: ${(err as Error).message}`, 'check the user\'s client-certificate(-data) and client-key(-data) (kubectl config view --minify --raw)');
  }
}

/** Attempts to open a dropped forward again, and the pause before each (a rollout replaces the pod in seconds). */
const RECONNECT_ATTEMPTS = 12;
const RECONNECT_PAUSE_MS = [250, 500, 1000, 2000, 4000, 5000];

const ready = (p: Pod) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

async function controlPod(kube: KubeClient): Promise<string | undefined> {
  const pods = (await kube.list<Pod & { apiVersion: string; kind: string }>('v1', 'Pod', {
    namespace: CONTROL_NAMESPACE, labelSelector: `${PART_OF}=mesh,app.kubernetes.io/component=control`,
  })).filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp);
  return (pods.find(ready) ?? pods[0])?.metadata?.name;
}

/**
 * Opens the forward. One that answered and then drops (mesh-control restarted, the API server or the kubelet cut the
 * WebSocket) is opened again to whichever control pod runs then, up to RECONNECT_ATTEMPTS times in a row, saying so
 * on `say` (stderr), for about 40 s; one that never answered fails at once, saying why.
 */
export async function openControlForward(kube: KubeClient, o: { say?: (line: string) => void } = {}): Promise<ControlForward> {
  const say = o.say ?? ((line: string) => process.stderr.write(`${line}\n`));
  const first = await controlPod(kube);
  if (!first) {
    throw new MeshError(`no running mesh-control pod in namespace ${CONTROL_NAMESPACE} (context ${kube.contextName})`,
      `install it with 'mesh install --platform kubernetes --apply', or see kubectl -n ${CONTROL_NAMESPACE} get pods`);
  }
  const read = (name: string) => kube.read<{ apiVersion: string; kind: string; data?: Record<string, string> }>({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: CONTROL_NAMESPACE });
  const [roots, config] = await Promise.all([read(TRUST_ROOTS_CONFIGMAP), read(MESH_CONFIGMAP)]);
  const anchors = roots?.data?.['ca-bundle.crt'];
  if (!anchors) throw new MeshError(`configmap ${CONTROL_NAMESPACE}/${TRUST_ROOTS_CONFIGMAP} has no trust anchors`, "re-run 'mesh install --platform kubernetes --apply'");
  const trustDomain = config?.data?.trustDomain || 'cluster.local';
  const user: { headers?: Record<string, string>; cert?: Buffer | string; key?: Buffer | string } = {};
  await kube.kc.applyToHTTPSOptions(user as never);
  const auth = user.headers?.Authorization ?? user.headers?.authorization;
  const bearer = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
  const { context: withCert, name: certificateUser } = (!bearer && clientCertificate(user.cert, user.key, anchors, kube.contextName)) || {};

  const open = async (pod: string) => {
    const forward = await forwardPort(kube.kc, CONTROL_NAMESPACE, pod, CONTROL_PORT);
    return { pod, forward, client: new ControlClient(`127.0.0.1:${forward.port}`, anchors, trustDomain, withCert && (() => withCert)), answered: false };
  };
  let now = await open(first);
  let reconnects = 0;
  let reopening: Promise<void> | undefined;
  let closed = false;
  const shut = async (c: typeof now) => {
    c.client.close();
    await c.forward.close();
  };

  /** The forward again, to the control pod running now; throws after RECONNECT_ATTEMPTS. */
  const reopen = (why: string) => (reopening ??= (async () => {
    const old = now;
    await shut(old);
    let last = why;
    for (let attempt = 1; attempt <= RECONNECT_ATTEMPTS && !closed; attempt++) {
      say(attempt === 1 ? `mesh: the port-forward to ${CONTROL_NAMESPACE}/${old.pod} dropped (${last}); reconnecting (1/${RECONNECT_ATTEMPTS})`
        : `mesh: reconnecting to mesh-control (${attempt}/${RECONNECT_ATTEMPTS}): ${last}`);
      await new Promise((r) => setTimeout(r, RECONNECT_PAUSE_MS[Math.min(attempt - 1, RECONNECT_PAUSE_MS.length - 1)]));
      try {
        const pod = await controlPod(kube);
        if (!pod) {
          last = `no running mesh-control pod in ${CONTROL_NAMESPACE}`;
          continue;
        }
        const next = await open(pod);
        const probe = await next.client.request('GET', '/v1/version', undefined, { timeoutMs: 10_000 }).catch((err: Error) => err);
        if (probe instanceof Error) {
          last = next.forward.lastError() ?? probe.message;
          await shut(next);
          continue;
        }
        next.answered = true;
        now = next;
        reconnects++;
        say(`mesh: reconnected to ${CONTROL_NAMESPACE}/${pod}`);
        return;
      } catch (err) {
        last = (err as Error).message;
      }
    }
    throw new MeshError(`the port-forward to mesh-control dropped and could not be opened again (${last})`,
      `see kubectl -n ${CONTROL_NAMESPACE} get pods, then run the command again`);
  })().finally(() => (reopening = undefined)));

  const forwardError = (c: typeof now, err: unknown) => {
    const why = c.forward.lastError();
    if (!why) return err;
    return new MeshError(why, `it needs get and create on pods/portforward in ${CONTROL_NAMESPACE} (a WebSocket forward is authorized as get: kubectl auth can-i get pods/portforward -n ${CONTROL_NAMESPACE}) and a running mesh-control`);
  };
  return {
    bearer,
    certificateUser,
    get reconnects() {
      return reconnects;
    },
    async request<T>(method: string, path: string, ro: { timeoutMs?: number } = {}) {
      for (let tries = 1; ; tries++) {
        if (reopening) await reopening;
        const c = now;
        try {
          const r = await c.client.request<T>(method, path, undefined, { bearer, timeoutMs: ro.timeoutMs });
          c.answered = true;
          return r;
        } catch (err) {
          if (!(err instanceof ControlUnreachable) || !c.answered || closed || tries > 2) throw forwardError(c, err);
          // Another call may have reopened it already; else this one does. Only a GET is sent again.
          if (c === now) await reopen(c.forward.lastError() ?? err.message);
          else if (reopening) await reopening;
          if (method !== 'GET') throw forwardError(c, err);
        }
      }
    },
    async close() {
      closed = true;
      await shut(now);
    },
  };
}
