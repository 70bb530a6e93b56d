// Route and Policy custom resources as the mesh models (src/model/*) see them: stripped of server metadata,
// validated the same way as on the local platform, and gathered into the routes/policies config documents.
import { sortRoutes, validateRoute, type Route, type RouteConfig } from '../../model/route.js';
import { sortPolicies, validatePolicy, type Policy, type PolicyConfig } from '../../model/policy.js';

export interface OwnerReference {
  kind?: string;
  name?: string;
  controller?: boolean;
}

export interface Pod {
  metadata?: {
    name?: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string; deletionTimestamp?: string;
    ownerReferences?: OwnerReference[];
  };
  spec?: { serviceAccountName?: string; containers?: { name: string }[]; initContainers?: { name: string }[] };
  status?: { podIP?: string; phase?: string };
}

export interface EndpointSlice {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string };
  /** Named after the Service's ports; port is the container port a named targetPort resolved to. */
  ports?: { name?: string | null; port?: number | null; protocol?: string | null }[] | null;
  endpoints?: { addresses?: string[]; conditions?: { ready?: boolean | null; terminating?: boolean | null }; targetRef?: { kind?: string; name?: string; namespace?: string } }[];
}

export interface Service {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  spec?: { type?: string; clusterIP?: string; clusterIPs?: string[]; ports?: { name?: string; port?: number; targetPort?: number | string; protocol?: string; appProtocol?: string }[] };
}

export interface MeshResource {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  spec?: unknown;
}

/** Only what the model knows: the server's metadata (uid, managedFields, ...) and status are not part of it. */
export function stripResource(o: MeshResource, kind: 'Route' | 'Policy'): unknown {
  return {
    apiVersion: o.apiVersion ?? 'mesh.io/v1alpha1',
    kind: o.kind ?? kind,
    metadata: { name: o.metadata?.name, namespace: o.metadata?.namespace },
    spec: o.spec,
  };
}

/** The config documents the snapshot carries; invalid resources are left out and reported through log. */
export function crdConfig(routes: MeshResource[], policies: MeshResource[], log: (line: string) => void): { routes: RouteConfig; policies: PolicyConfig } {
  const name = (o: MeshResource) => `${o.metadata?.namespace}/${o.metadata?.name}`;
  const r: Route[] = [];
  for (const o of routes) {
    const v = validateRoute(stripResource(o, 'Route'));
    if (v.value) r.push(v.value);
    else log(`route ${name(o)} ignored: ${v.errors.join('; ')}`);
  }
  const p: Policy[] = [];
  for (const o of policies) {
    const v = validatePolicy(stripResource(o, 'Policy'));
    if (v.value) p.push(v.value);
    else log(`policy ${name(o)} ignored: ${v.errors.join('; ')}`);
  }
  return { routes: { routes: sortRoutes(r) }, policies: { policies: sortPolicies(p) } };
}
