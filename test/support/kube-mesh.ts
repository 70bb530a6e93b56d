// Mesh objects for the fake API server: a meshed Pod (the proxy as a native sidecar, as inject adds it).
import type { FakeApiServer } from './kube/fake-api-server.js';

export function seedMeshPod(server: FakeApiServer, name: string, labels: Record<string, string>, o: { namespace?: string; sa?: string; ip?: string } = {}): void {
  server.store.create({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: o.namespace ?? 'default', labels },
    spec: {
      serviceAccountName: o.sa ?? labels.app,
      initContainers: [{ name: 'mesh-proxy', image: 'ghcr.io/mesh/mesh:test', restartPolicy: 'Always' }],
      containers: [{ name: 'app', image: 'example/app' }],
    },
    status: { phase: 'Running', podIP: o.ip ?? '10.0.0.1' },
  });
}
