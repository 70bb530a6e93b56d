// The mesh's CustomResourceDefinitions (routes.mesh.io, policies.mesh.io): where the Kubernetes platform stores
// the route and policy models. The schemas mirror src/model/route.ts and src/model/policy.ts (checked in tests).
import { CRD_GROUP, CRD_VERSION, ownedLabels } from './names.js';
import { RETRY_ON } from '../../model/route.js';

type Schema = Record<string, unknown>;

const str = (description: string, extra: Schema = {}): Schema => ({ type: 'string', description, ...extra });
const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
const DURATION = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';

const HEADER_NAME = "^[a-z0-9!#$%&'*+.^_`|-]+$";
const obj = (properties: Record<string, Schema>, required: string[] = [], description?: string): Schema => ({
  type: 'object', ...(description ? { description } : {}), ...(required.length ? { required } : {}), properties,
});

// Mirrors src/model/route.ts field for field (validateRoute stays the authority on what a route means:
// the schema catches the shape at kubectl apply time, the model the cross-field rules).
const match = obj({
  headers: {
    type: 'array', description: 'ANDed; header names lower case, each at most once',
    items: obj({ name: str('header name', { pattern: HEADER_NAME }), exact: str('the value equals this'), regex: str('JavaScript regular expression; matches anywhere unless anchored') }, ['name']),
  },
  pathPrefix: str('the request path starts with this', { pattern: '^/' }),
  method: str('HTTP method, upper case', { pattern: '^[A-Za-z]+$' }),
}, [], 'ANDed conditions; at least one');

const backend = obj({
  version: str('a version of the service', { pattern: DNS_LABEL, maxLength: 63 }),
  weight: { type: 'integer', minimum: 0, description: 'relative weight; not all zero' },
}, ['version', 'weight']);

const percent = { type: 'number', minimum: 0, maximum: 100 };
const rule = obj({
  matches: { type: 'array', minItems: 1, items: match, description: 'ORed; absent on the default (last) rule' },
  backends: { type: 'array', minItems: 1, items: backend },
  timeout: str('per-try timeout, e.g. 500ms or 2s; the proxy answers 504', { pattern: DURATION }),
  retries: obj({
    attempts: { type: 'integer', minimum: 1, maximum: 10, description: 'retries after the first try; idempotent requests only (gRPC statuses: calls answered trailers-only)' },
    retryOn: { type: 'array', minItems: 1, items: str('what is retried', { enum: [...RETRY_ON] }) },
  }, ['attempts']),
  fault: obj({
    delay: obj({ duration: str('added delay', { pattern: DURATION }), percent }, ['duration', 'percent']),
    abort: obj({
      status: { type: 'integer', minimum: 400, maximum: 599, description: 'HTTP status; or grpcStatus' },
      grpcStatus: { type: 'integer', minimum: 1, maximum: 16, description: 'gRPC status (trailers-only to gRPC callers); or status' },
      percent,
    }, ['percent']),
  }),
}, ['backends']);

export const ROUTE_SCHEMA: Schema = obj({
  apiVersion: { type: 'string' },
  kind: { type: 'string' },
  metadata: { type: 'object' },
  spec: obj({
    rules: { type: 'array', minItems: 1, items: rule, description: 'in order, first match wins; the rule without matches is the default and comes last' },
    retryBudget: obj({ retryRatio: { type: 'number', minimum: 0, maximum: 1 }, minRetriesPerSecond: { type: 'integer', minimum: 0 } }, ['retryRatio', 'minRetriesPerSecond']),
    failureAccrual: obj({ consecutiveFailures: { type: 'integer', minimum: 1 } }, ['consecutiveFailures']),
  }, ['rules'], 'a Route is named after the service it routes, in that service\'s namespace'),
}, ['spec']);

// Mirrors src/model/policy.ts (validatePolicy stays the authority: e.g. path normalisation is not expressible here).
export const POLICY_SCHEMA: Schema = obj({
  apiVersion: { type: 'string' },
  kind: { type: 'string' },
  metadata: { type: 'object' },
  spec: obj({
    default: str('what happens to a request no rule allows: allow admits every client, deny only what a rule allows', { enum: ['allow', 'deny'] }),
    rules: {
      type: 'array', description: 'allow rules; order never changes a decision',
      items: obj({
        from: str("the client: '*', a service name, <namespace>/<service>, or spiffe://<trust-domain>/ns/<ns>/sa/<sa>", { minLength: 1 }),
        to: str("a service of this namespace, or '*'", { pattern: `(${DNS_LABEL})|(^[*]$)` }),
        port: { type: 'integer', minimum: 1, maximum: 65535, description: 'the destination workload port' },
        pathPrefix: str('segment-wise prefix of the normalised request path', { pattern: '^/' }),
      }, ['from', 'to']),
    },
    egress: str('whether workloads of the namespace may reach destinations outside the mesh (absent: allow)', { enum: ['allow', 'deny'] }),
  }, ['default'], 'a namespace\'s authorization policy; several in one namespace merge (deny wins)'),
}, ['spec']);

function crd(plural: string, kind: string, shortNames: string[], schema: Schema, columns: { name: string; type: string; jsonPath: string }[]) {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${CRD_GROUP}`, labels: ownedLabels(undefined, 'crds') },
    spec: {
      group: CRD_GROUP,
      scope: 'Namespaced',
      names: { plural, singular: kind.toLowerCase(), kind, listKind: `${kind}List`, shortNames, categories: ['mesh'] },
      versions: [{
        name: CRD_VERSION,
        served: true,
        storage: true,
        schema: { openAPIV3Schema: schema },
        additionalPrinterColumns: columns,
      }],
    },
  };
}

/** The CRDs `mesh install --crds` renders, labelled with the given version. */
export function renderCrds(version?: string): Record<string, unknown>[] {
  const withVersion = (c: ReturnType<typeof crd>) => ({ ...c, metadata: { ...c.metadata, labels: ownedLabels(version, 'crds') } });
  return [
    withVersion(crd('routes', 'Route', ['mroute'], ROUTE_SCHEMA, [
      // The API server prints only the first of several results, so the whole list of the default rule's backends.
      { name: 'Backends', type: 'string', jsonPath: '.spec.rules[-1:].backends' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ])),
    withVersion(crd('policies', 'Policy', ['mpolicy'], POLICY_SCHEMA, [
      { name: 'Default', type: 'string', jsonPath: '.spec.default' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ])),
  ];
}

export const CRD_NAMES = [`routes.${CRD_GROUP}`, `policies.${CRD_GROUP}`];
