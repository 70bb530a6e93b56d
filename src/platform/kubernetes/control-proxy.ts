// The CLI's way to the control plane on Kubernetes: the API server's service proxy to the mesh-control Service
// (/api/v1/namespaces/mesh-system/services/https:mesh-control:8443/proxy/...), so kubeconfig credentials and RBAC apply.
import { MeshError } from '../../util/errors.js';
import type { KubeClient } from './client.js';
import { getJson } from './list-watch.js';
import { CONTROL_NAME, CONTROL_NAMESPACE, CONTROL_PORT } from './names.js';

export const controlProxyPath = (path: string) =>
  `/api/v1/namespaces/${CONTROL_NAMESPACE}/services/https:${CONTROL_NAME}:${CONTROL_PORT}/proxy${path}`;

export async function controlGet<T>(kube: KubeClient, path: string): Promise<T> {
  try {
    return await getJson<T>(kube.kc, controlProxyPath(path));
  } catch (err) {
    const e = err as Error & { statusCode?: number; reason?: string };
    if (e.statusCode === 404 && /services/.test(e.reason ?? '')) {
      throw new MeshError(`no mesh control plane in namespace ${CONTROL_NAMESPACE} (context ${kube.contextName})`, "install it with 'mesh install --platform kubernetes --apply'");
    }
    if (e.statusCode === 503) throw new MeshError(`the mesh control plane is not answering (${e.reason})`, `check its pods: kubectl -n ${CONTROL_NAMESPACE} get pods`);
    if (e.statusCode === 403) throw new MeshError(`cannot reach the control plane: ${e.reason}`, `it needs get on services/proxy in ${CONTROL_NAMESPACE}; ask for it, or use a context with more rights`);
    if (e.statusCode) throw new MeshError(`the control plane answered ${e.statusCode} to GET ${path.split('?')[0]}: ${e.reason}`, `kubectl -n ${CONTROL_NAMESPACE} logs deploy/${CONTROL_NAME}`);
    throw kube.wrap(err, `reach the control plane through ${kube.server}`);
  }
}
