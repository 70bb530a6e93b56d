// Validates objects against the Kubernetes OpenAPI schemas bundled in kubernetes-models (offline, no cluster).
import * as models from 'kubernetes-models';

type Model = new (data: object) => { validate(): void };

function modelFor(apiVersion: string, kind: string): Model {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') as [string, string] : ['', apiVersion];
  const key = group === '' ? version : group.replace(/\.(\w)/g, (_, c: string) => c.toUpperCase()).replace(/\./g, '');
  const ns = (models as unknown as Record<string, Record<string, Record<string, Model>>>)[key];
  const byVersion = group === '' ? (ns as unknown as Record<string, Model>) : ns?.[version];
  const model = byVersion?.[kind];
  if (!model) throw new Error(`no OpenAPI model for ${apiVersion} ${kind}`);
  return model;
}

/** Throws with the schema's errors when the object is not a valid apiVersion/kind. */
export function validateK8s(obj: { apiVersion?: string; kind?: string }): void {
  const Model = modelFor(String(obj.apiVersion), String(obj.kind));
  new Model(obj).validate();
}
