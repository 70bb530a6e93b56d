// The CLI's way to mesh-control for what the API server's service proxy cannot carry (a tap's long-polls, the
// dashboard), as `linkerd viz dashboard` goes: a port-forward to a running mesh-control pod, the control plane
// verified by its SPIFFE identity under the installed trust anchors, and the kubeconfig user's own bearer token sent
// along for the control plane to check (TokenReview, then a SubjectAccessReview per tap).
import { ControlClient, type ControlResponse } from '../../api/client.js';
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
  /** A call through the forward; a forward that failed is said in one line. */
  request<T>(method: string, path: string, o?: { timeoutMs?: number }): Promise<ControlResponse<T>>;
  close(): Promise<void>;
}

const ready = (p: Pod) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

export async function openControlForward(kube: KubeClient): Promise<ControlForward> {
  const pods = (await kube.list<Pod & { apiVersion: string; kind: string }>('v1', 'Pod', {
    namespace: CONTROL_NAMESPACE, labelSelector: `${PART_OF}=mesh,app.kubernetes.io/component=control`,
  })).filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp);
  const pod = pods.find(ready) ?? pods[0];
  if (!pod?.metadata?.name) {
    throw new MeshError(`no running mesh-control pod in namespace ${CONTROL_NAMESPACE} (context ${kube.contextName})`,
      `install it with 'mesh install --platform kubernetes --apply', or see kubectl -n ${CONTROL_NAMESPACE} get pods`);
  }
  const read = (name: string) => kube.read<{ apiVersion: string; kind: string; data?: Record<string, string> }>({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: CONTROL_NAMESPACE });
  const [roots, config] = await Promise.all([read(TRUST_ROOTS_CONFIGMAP), read(MESH_CONFIGMAP)]);
  const anchors = roots?.data?.['ca-bundle.crt'];
  if (!anchors) throw new MeshError(`configmap ${CONTROL_NAMESPACE}/${TRUST_ROOTS_CONFIGMAP} has no trust anchors`, "re-run 'mesh install --platform kubernetes --apply'");
  const headers: { headers?: Record<string, string> } = {};
  await kube.kc.applyToHTTPSOptions(headers as never);
  const auth = headers.headers?.Authorization ?? headers.headers?.authorization;
  const bearer = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;

  const forward = await forwardPort(kube.kc, CONTROL_NAMESPACE, pod.metadata.name, CONTROL_PORT);
  const client = new ControlClient(`127.0.0.1:${forward.port}`, anchors, config?.data?.trustDomain || 'cluster.local');
  return {
    bearer,
    async request<T>(method: string, path: string, o: { timeoutMs?: number } = {}) {
      try {
        return await client.request<T>(method, path, undefined, { bearer, timeoutMs: o.timeoutMs });
      } catch (err) {
        const why = forward.lastError();
        if (!why) throw err;
        throw new MeshError(why, `it needs create on pods/portforward in ${CONTROL_NAMESPACE} (kubectl auth can-i create pods/portforward -n ${CONTROL_NAMESPACE}) and a running mesh-control`);
      }
    },
    async close() {
      client.close();
      await forward.close();
    },
  };
}
