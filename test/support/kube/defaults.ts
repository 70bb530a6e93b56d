// Object validation and defaulting the real API server applies on writes (the subset code under test could trip on).
import type { NameRule, ResourceType } from './resources.js';
import { labelSelectorToString, parseLabelSelector } from './selectors.js';
import { deepEqual, isObject, type Json, type JsonObject, type KubeObject, type StatusCause } from './types.js';

const SUBDOMAIN = '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*';
const LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const DNS1035 = '[a-z]([-a-z0-9]*[a-z0-9])?';
const QUALIFIED = '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]';

const NAME_RULES: Record<Exclude<NameRule, 'path'>, { re: RegExp; max: number; msg: string }> = {
  subdomain: { re: new RegExp(`^${SUBDOMAIN}$`), max: 253, msg: `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '${SUBDOMAIN}')` },
  label: { re: new RegExp(`^${LABEL}$`), max: 63, msg: `a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '${LABEL}')` },
  dns1035: { re: new RegExp(`^${DNS1035}$`), max: 63, msg: `a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '${DNS1035}')` },
};

export function nameErrors(name: string, rule: NameRule): string[] {
  if (rule === 'path') {
    if (name === '.' || name === '..') return [`may not be '${name}'`];
    return ['/', '%'].filter((c) => name.includes(c)).map((c) => `may not contain '${c}'`);
  }
  const r = NAME_RULES[rule];
  const out: string[] = [];
  if (name.length > r.max) out.push(`must be no more than ${r.max} characters`);
  if (!r.re.test(name)) out.push(r.msg);
  return out;
}

function labelErrors(labels: Json | undefined, field: string): StatusCause[] {
  if (!isObject(labels)) return [];
  const causes: StatusCause[] = [];
  for (const [k, v] of Object.entries(labels)) {
    const [prefix, name] = k.includes('/') ? [k.slice(0, k.indexOf('/')), k.slice(k.indexOf('/') + 1)] : ['', k];
    const badKey = (prefix && !new RegExp(`^${SUBDOMAIN}$`).test(prefix)) || name.length > 63 || !new RegExp(`^${QUALIFIED}$`).test(name);
    if (badKey) causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: "${k}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character` });
    if (field.endsWith('labels') && typeof v === 'string' && (v.length > 63 || !new RegExp(`^(${QUALIFIED})?$`).test(v))) {
      causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: "${v}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character` });
    }
  }
  return causes;
}

/** Metadata checks common to every resource; name is checked by the caller (it may be generated). */
export function metadataErrors(obj: KubeObject): StatusCause[] {
  return [...labelErrors(obj.metadata.labels, 'metadata.labels'), ...labelErrors(obj.metadata.annotations, 'metadata.annotations')];
}

const obj = (v: Json | undefined): JsonObject => (isObject(v) ? v : {});
const list = (v: Json | undefined): JsonObject[] => (Array.isArray(v) ? v.filter(isObject) : []);

function defaultPodSpec(spec: JsonObject): void {
  spec.restartPolicy ??= 'Always';
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.schedulerName ??= 'default-scheduler';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.serviceAccountName ??= typeof spec.serviceAccount === 'string' ? spec.serviceAccount : 'default';
  spec.serviceAccount ??= spec.serviceAccountName;
  spec.securityContext ??= {};
  for (const c of [...list(spec.containers), ...list(spec.initContainers)]) {
    const image = typeof c.image === 'string' ? c.image : '';
    c.imagePullPolicy ??= /:[^/]+$/.test(image) && !image.endsWith(':latest') ? 'IfNotPresent' : 'Always';
    c.terminationMessagePath ??= '/dev/termination-log';
    c.terminationMessagePolicy ??= 'File';
    for (const p of list(c.ports)) p.protocol ??= 'TCP';
  }
}

let nextClusterIp = 1;
let nextNodePort = 30000;

function defaultService(o: KubeObject, prev: KubeObject | undefined): void {
  const spec = (o.spec = obj(o.spec));
  const old = obj(prev?.spec);
  spec.type ??= 'ClusterIP';
  spec.sessionAffinity ??= 'None';
  for (const p of list(spec.ports)) {
    p.protocol ??= 'TCP';
    p.targetPort ??= p.port ?? null;
    const oldPort = list(old.ports).find((x) => x.port === p.port);
    if ((spec.type === 'NodePort' || spec.type === 'LoadBalancer') && p.nodePort === undefined) p.nodePort = oldPort?.nodePort ?? nextNodePort++;
  }
  if (spec.type === 'ExternalName') return;
  // An update that omits the allocated IP keeps it, like the real API.
  spec.clusterIP ??= old.clusterIP ?? `10.96.${Math.floor(nextClusterIp / 250)}.${(nextClusterIp++ % 250) + 1}`;
  spec.clusterIPs ??= [spec.clusterIP];
  spec.ipFamilies ??= ['IPv4'];
  spec.ipFamilyPolicy ??= 'SingleStack';
  spec.internalTrafficPolicy ??= 'Cluster';
  if (!prev) o.status = { loadBalancer: {} };
}

/** Defaults applied to a new or updated object before validation. */
export function applyDefaults(rt: ResourceType, o: KubeObject, prev: KubeObject | undefined): void {
  const core = rt.group === '';
  if (core && rt.plural === 'namespaces') {
    o.metadata.labels = { ...o.metadata.labels, 'kubernetes.io/metadata.name': o.metadata.name ?? '' };
    o.spec = { finalizers: ['kubernetes'], ...obj(o.spec) };
    if (!prev) o.status = { phase: 'Active' };
  } else if (core && rt.plural === 'services') defaultService(o, prev);
  else if (core && rt.plural === 'pods') {
    defaultPodSpec((o.spec = obj(o.spec)));
    if (!prev) o.status = { phase: 'Pending', qosClass: 'BestEffort' };
  } else if (core && rt.plural === 'secrets') {
    o.type ??= 'Opaque';
    if (isObject(o.stringData)) {
      const data = obj(o.data);
      for (const [k, v] of Object.entries(o.stringData)) data[k] = Buffer.from(String(v)).toString('base64');
      o.data = data;
      delete o.stringData;
    }
  } else if (rt.group === 'apps' && ['deployments', 'statefulsets', 'replicasets', 'daemonsets'].includes(rt.plural)) {
    const spec = (o.spec = obj(o.spec));
    if (rt.plural !== 'daemonsets') spec.replicas ??= 1;
    spec.revisionHistoryLimit ??= 10;
    if (rt.plural === 'deployments') {
      spec.progressDeadlineSeconds ??= 600;
      spec.strategy ??= { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } };
    }
    const template = obj(spec.template);
    if (isObject(template.spec)) defaultPodSpec(template.spec);
  }
}

/** Validation of the fields that break controllers when wrong; returns causes for a 422. */
export function specErrors(rt: ResourceType, o: KubeObject, prev: KubeObject | undefined): StatusCause[] {
  const causes: StatusCause[] = [];
  const required = (field: string) => causes.push({ reason: 'FieldValueRequired', field, message: 'Required value' });
  const spec = obj(o.spec);
  if (rt.group === '' && rt.plural === 'pods' && !list(spec.containers).length) required('spec.containers');
  if (rt.group === '' && rt.plural === 'services' && spec.type !== 'ExternalName' && spec.clusterIP !== 'None' && !list(spec.ports).length) required('spec.ports');
  if (rt.group === 'apps' && ['deployments', 'statefulsets', 'replicasets', 'daemonsets'].includes(rt.plural)) {
    const template = obj(spec.template);
    if (!isObject(spec.selector)) required('spec.selector');
    else {
      const sel = labelSelectorToString(spec.selector);
      const labels = obj(obj(template.metadata).labels);
      if (!sel || !parseLabelSelector(sel)({ apiVersion: '', kind: '', metadata: { labels: labels as Record<string, string> } })) {
        causes.push({ reason: 'FieldValueInvalid', field: 'spec.template.metadata.labels', message: `Invalid value: ${JSON.stringify(labels)}: \`selector\` does not match template \`labels\`` });
      }
      if (prev && !deepEqual(obj(prev.spec).selector, spec.selector)) {
        causes.push({ reason: 'FieldValueInvalid', field: 'spec.selector', message: `Invalid value: ${JSON.stringify(spec.selector)}: field is immutable` });
      }
    }
    if (!list(obj(template.spec).containers).length) required('spec.template.spec.containers');
  }
  return causes;
}
