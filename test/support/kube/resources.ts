// Resource registry: built-in resource types, CRD-defined types, and the discovery documents built from them.
import { errors, isObject, type JsonObject, type KubeObject, type StatusCause } from './types.js';

export interface ScaleSpec {
  specReplicasPath: string;
  statusReplicasPath: string;
  labelSelectorPath?: string;
}

/** How metadata.name is validated: DNS-1123 subdomain (most), DNS-1123 label, DNS-1035 label (services), path segment (RBAC). */
export type NameRule = 'subdomain' | 'label' | 'dns1035' | 'path';

export interface ResourceType {
  group: string;
  /** Served versions, preferred first. Objects are stored once and served under any of them. */
  versions: string[];
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  verbs: string[];
  shortNames: string[];
  categories: string[];
  status: boolean;
  scale?: ScaleSpec;
  /** Whether metadata.generation is maintained (workloads, CRs, webhooks; not core objects). */
  generation: boolean;
  /** DELETE answers the deleted object instead of a Success Status (pods, services, namespaces, CRs). */
  returnDeleted: boolean;
  /** Virtual review resources: POST only, nothing stored. */
  createOnly: boolean;
  nameRule: NameRule;
  /** Field selector labels beyond metadata.name / metadata.namespace. */
  fieldLabels: string[];
  /** Set for custom resources: the owning CRD's name and per-version schemas. */
  crdName?: string;
  schemas?: Record<string, JsonObject>;
}

const RW = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

interface Def extends Partial<ResourceType> {
  group: string;
  versions: string[];
  plural: string;
  kind: string;
}

function def(d: Def): ResourceType {
  return {
    singular: d.kind.toLowerCase(), namespaced: true, verbs: RW, shortNames: [], categories: [], status: false,
    generation: false, returnDeleted: false, createOnly: false, nameRule: 'subdomain', fieldLabels: [], ...d,
  };
}

const appsScale: ScaleSpec = { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' };
const review = { namespaced: false, createOnly: true, verbs: ['create'] };
const workload = { status: true, generation: true, categories: ['all'] };

function builtins(): ResourceType[] {
  const core = (d: Omit<Def, 'group' | 'versions'>) => def({ group: '', versions: ['v1'], ...d });
  return [
    core({ plural: 'namespaces', kind: 'Namespace', namespaced: false, shortNames: ['ns'], status: true, nameRule: 'label',
      returnDeleted: true, verbs: RW.filter((v) => v !== 'deletecollection'), fieldLabels: ['status.phase'] }),
    core({ plural: 'pods', kind: 'Pod', shortNames: ['po'], status: true, returnDeleted: true, categories: ['all'],
      fieldLabels: ['spec.nodeName', 'spec.serviceAccountName', 'spec.restartPolicy', 'spec.schedulerName', 'status.phase', 'status.podIP'] }),
    core({ plural: 'services', kind: 'Service', shortNames: ['svc'], status: true, returnDeleted: true, nameRule: 'dns1035', categories: ['all'] }),
    core({ plural: 'serviceaccounts', kind: 'ServiceAccount', shortNames: ['sa'] }),
    core({ plural: 'secrets', kind: 'Secret', fieldLabels: ['type'] }),
    core({ plural: 'configmaps', kind: 'ConfigMap', shortNames: ['cm'] }),
    core({ plural: 'endpoints', kind: 'Endpoints', singular: 'endpoints', shortNames: ['ep'] }),
    core({ plural: 'events', kind: 'Event', shortNames: ['ev'] }),
    core({ plural: 'nodes', kind: 'Node', namespaced: false, shortNames: ['no'], status: true }),
    def({ group: 'discovery.k8s.io', versions: ['v1'], plural: 'endpointslices', kind: 'EndpointSlice' }),
    def({ group: 'apps', versions: ['v1'], plural: 'deployments', kind: 'Deployment', shortNames: ['deploy'], scale: appsScale, ...workload }),
    def({ group: 'apps', versions: ['v1'], plural: 'statefulsets', kind: 'StatefulSet', shortNames: ['sts'], scale: appsScale, ...workload }),
    def({ group: 'apps', versions: ['v1'], plural: 'daemonsets', kind: 'DaemonSet', shortNames: ['ds'], ...workload }),
    def({ group: 'apps', versions: ['v1'], plural: 'replicasets', kind: 'ReplicaSet', shortNames: ['rs'], scale: appsScale, ...workload }),
    def({ group: 'batch', versions: ['v1'], plural: 'jobs', kind: 'Job', ...workload }),
    def({ group: 'batch', versions: ['v1'], plural: 'cronjobs', kind: 'CronJob', shortNames: ['cj'], ...workload }),
    def({ group: 'policy', versions: ['v1'], plural: 'poddisruptionbudgets', kind: 'PodDisruptionBudget', shortNames: ['pdb'], status: true, generation: true }),
    def({ group: 'networking.k8s.io', versions: ['v1'], plural: 'networkpolicies', kind: 'NetworkPolicy', shortNames: ['netpol'], generation: true }),
    def({ group: 'coordination.k8s.io', versions: ['v1'], plural: 'leases', kind: 'Lease' }),
    def({ group: 'rbac.authorization.k8s.io', versions: ['v1'], plural: 'clusterroles', kind: 'ClusterRole', namespaced: false, nameRule: 'path' }),
    def({ group: 'rbac.authorization.k8s.io', versions: ['v1'], plural: 'clusterrolebindings', kind: 'ClusterRoleBinding', namespaced: false, nameRule: 'path' }),
    def({ group: 'rbac.authorization.k8s.io', versions: ['v1'], plural: 'roles', kind: 'Role', nameRule: 'path' }),
    def({ group: 'rbac.authorization.k8s.io', versions: ['v1'], plural: 'rolebindings', kind: 'RoleBinding', nameRule: 'path' }),
    def({ group: 'admissionregistration.k8s.io', versions: ['v1'], plural: 'mutatingwebhookconfigurations', kind: 'MutatingWebhookConfiguration', namespaced: false, generation: true }),
    def({ group: 'admissionregistration.k8s.io', versions: ['v1'], plural: 'validatingwebhookconfigurations', kind: 'ValidatingWebhookConfiguration', namespaced: false, generation: true }),
    def({ group: 'apiextensions.k8s.io', versions: ['v1'], plural: 'customresourcedefinitions', kind: 'CustomResourceDefinition',
      namespaced: false, shortNames: ['crd', 'crds'], status: true, generation: true, returnDeleted: true }),
    def({ group: 'authorization.k8s.io', versions: ['v1'], plural: 'selfsubjectaccessreviews', kind: 'SelfSubjectAccessReview', ...review }),
    def({ group: 'authorization.k8s.io', versions: ['v1'], plural: 'subjectaccessreviews', kind: 'SubjectAccessReview', ...review }),
    def({ group: 'authentication.k8s.io', versions: ['v1'], plural: 'tokenreviews', kind: 'TokenReview', ...review }),
    def({ group: 'authentication.k8s.io', versions: ['v1'], plural: 'selfsubjectreviews', kind: 'SelfSubjectReview', ...review }),
  ];
}

/** Orders versions like the API server: GA before beta before alpha, higher numbers first. */
export function compareKubeVersions(a: string, b: string): number {
  const rank = (v: string): [number, number, number] => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (!m) return [0, 0, 0];
    return [m[2] === undefined ? 3 : m[2] === 'beta' ? 2 : 1, Number(m[1]), Number(m[3] ?? 0)];
  };
  const [ra, rb] = [rank(a), rank(b)];
  for (let i = 0; i < 3; i++) if (ra[i] !== rb[i]) return rb[i] - ra[i];
  return a < b ? -1 : a > b ? 1 : 0;
}

export class ResourceRegistry {
  private readonly types: ResourceType[] = builtins();

  find(group: string, version: string, plural: string): ResourceType | undefined {
    return this.types.find((t) => t.group === group && t.plural === plural && t.versions.includes(version));
  }

  findByKind(apiVersion: string, kind: string): ResourceType | undefined {
    const { group, version } = splitApiVersion(apiVersion);
    return this.types.find((t) => t.group === group && t.kind === kind && t.versions.includes(version));
  }

  all(): readonly ResourceType[] {
    return this.types;
  }

  hasGroupVersion(group: string, version: string): boolean {
    return this.types.some((t) => t.group === group && t.versions.includes(version));
  }

  /** Registers (or re-registers after an update) the custom resource a CRD defines; throws 422 if the CRD is invalid. */
  registerCrd(crd: KubeObject): ResourceType {
    const rt = crdToResource(crd);
    const clash = this.types.find((t) => t.group === rt.group && t.plural === rt.plural && t.crdName !== rt.crdName);
    if (clash) throw errors.invalid('CustomResourceDefinition', 'apiextensions.k8s.io', rt.crdName ?? '', [
      { reason: 'FieldValueInvalid', field: 'spec.names.plural', message: `Invalid value: "${rt.plural}": already in use` },
    ]);
    this.unregisterCrd(rt.crdName ?? '');
    this.types.push(rt);
    return rt;
  }

  unregisterCrd(name: string): ResourceType | undefined {
    const i = this.types.findIndex((t) => t.crdName === name);
    return i < 0 ? undefined : this.types.splice(i, 1)[0];
  }

  /** GET /apis: every group with its versions, preferred version first. */
  groupList(): JsonObject {
    const groups = new Map<string, Set<string>>();
    for (const t of this.types) {
      if (!t.group) continue;
      const set = groups.get(t.group) ?? new Set<string>();
      t.versions.forEach((v) => set.add(v));
      groups.set(t.group, set);
    }
    return { kind: 'APIGroupList', apiVersion: 'v1', groups: [...groups.keys()].map((g) => this.group(g)).filter(isObject) };
  }

  group(name: string): JsonObject | undefined {
    const versions = [...new Set(this.types.filter((t) => t.group === name).flatMap((t) => t.versions))].sort(compareKubeVersions);
    if (!versions.length) return undefined;
    const gv = (v: string) => ({ groupVersion: `${name}/${v}`, version: v });
    return { kind: 'APIGroup', apiVersion: 'v1', name, versions: versions.map(gv), preferredVersion: gv(versions[0]) };
  }

  /** GET /api/v1 or /apis/<group>/<version>. Subresources follow their parent so lookups by kind find the parent first. */
  resourceList(group: string, version: string): JsonObject | undefined {
    const types = this.types.filter((t) => t.group === group && t.versions.includes(version));
    if (!types.length) return undefined;
    const resources: JsonObject[] = [];
    for (const t of types) {
      const main: JsonObject = { name: t.plural, singularName: t.singular, namespaced: t.namespaced, kind: t.kind, verbs: t.verbs };
      if (t.shortNames.length) main.shortNames = t.shortNames;
      if (t.categories.length) main.categories = t.categories;
      resources.push(main);
      const sub = (name: string, kind: string, verbs: string[], extra: JsonObject = {}) =>
        resources.push({ name: `${t.plural}/${name}`, singularName: '', namespaced: t.namespaced, kind, verbs, ...extra });
      if (t.status) sub('status', t.kind, ['get', 'patch', 'update']);
      if (t.scale) sub('scale', 'Scale', ['get', 'patch', 'update'], { group: 'autoscaling', version: 'v1' });
      if (t.plural === 'services' && !group) sub('proxy', 'ServiceProxyOptions', ['create', 'delete', 'get', 'patch', 'update']);
    }
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
  }
}

export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf('/');
  return i < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

export function apiVersionOf(rt: ResourceType, version: string): string {
  return rt.group ? `${rt.group}/${version}` : version;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** Validates a CRD like the apiextensions server does (the parts that matter here) and derives its resource type. */
export function crdToResource(crd: KubeObject): ResourceType {
  const spec = isObject(crd.spec) ? crd.spec : {};
  const names = isObject(spec.names) ? spec.names : {};
  const group = str(spec.group);
  const plural = str(names.plural);
  const kind = str(names.kind);
  const name = crd.metadata.name ?? '';
  const versions = Array.isArray(spec.versions) ? spec.versions.filter(isObject) : [];
  const causes: StatusCause[] = [];
  const bad = (field: string, message: string) => causes.push({ reason: 'FieldValueInvalid', field, message });
  if (!group.includes('.')) bad('spec.group', `Invalid value: "${group}": should be a domain with at least one dot`);
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(plural)) bad('spec.names.plural', `Invalid value: "${plural}": a lowercase RFC 1123 label is required`);
  if (!kind) bad('spec.names.kind', 'Required value');
  if (name !== `${plural}.${group}`) bad('metadata.name', `Invalid value: "${name}": must be spec.names.plural+"."+spec.group`);
  if (spec.scope !== 'Namespaced' && spec.scope !== 'Cluster') bad('spec.scope', `Unsupported value: "${str(spec.scope)}": supported values: "Cluster", "Namespaced"`);
  if (!versions.length) bad('spec.versions', 'Required value: must have exactly one version marked as storage version');
  else if (versions.filter((v) => v.storage === true).length !== 1) bad('spec.versions', 'Invalid value: must have exactly one version marked as storage version');
  if (causes.length) throw errors.invalid('CustomResourceDefinition', 'apiextensions.k8s.io', name, causes);

  const served = versions.filter((v) => v.served !== false);
  const withSub = served.find((v) => isObject(v.subresources)) ?? {};
  const subresources = isObject(withSub.subresources) ? withSub.subresources : {};
  const scale = isObject(subresources.scale) ? subresources.scale : undefined;
  const schemas: Record<string, JsonObject> = {};
  for (const v of served) {
    const schema = isObject(v.schema) && isObject(v.schema.openAPIV3Schema) ? v.schema.openAPIV3Schema : undefined;
    if (schema) schemas[str(v.name)] = schema;
  }
  const strings = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  return def({
    group, plural, kind,
    versions: served.map((v) => str(v.name)).sort(compareKubeVersions),
    singular: str(names.singular) || kind.toLowerCase(),
    namespaced: spec.scope === 'Namespaced',
    shortNames: strings(names.shortNames),
    categories: strings(names.categories),
    status: isObject(subresources.status),
    scale: scale ? {
      specReplicasPath: str(scale.specReplicasPath), statusReplicasPath: str(scale.statusReplicasPath),
      labelSelectorPath: str(scale.labelSelectorPath) || undefined,
    } : undefined,
    generation: true,
    returnDeleted: true,
    crdName: name,
    schemas,
  });
}
