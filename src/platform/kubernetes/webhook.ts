// The control plane's mutating admission webhook: the same transform as mesh inject, applied to each new Pod of
// a namespace labelled mesh.io/inject=enabled (or a pod annotated mesh.io/inject: enabled), answered as an
// AdmissionReview with a base64 JSONPatch. It never refuses a pod: failures admit it unmeshed, with a warning.
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, readBody, sendJson } from '../../util/http.js';
import { injectTemplate, type InjectOptions } from './inject.js';
import { INJECT_ANNOTATION, INJECT_LABEL, PROXY_CONTAINER } from './names.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface AdmissionRequest {
  uid: string;
  kind?: { group: string; version: string; kind: string };
  namespace?: string;
  operation?: string;
  object?: Obj;
  dryRun?: boolean;
}

export interface AdmissionResponse {
  uid: string;
  allowed: true;
  patchType?: 'JSONPatch';
  /** base64 of the JSON Patch (RFC 6902). */
  patch?: string;
  warnings?: string[];
}

export interface AdmissionReview {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  request?: AdmissionRequest;
  response?: AdmissionResponse;
}

export interface AdmitOptions {
  inject: InjectOptions;
  /** The namespace's labels (undefined when it cannot be read: then only the pod annotation counts). */
  namespaceLabels(namespace: string): Promise<Record<string, string> | undefined>;
}

export type PatchOp = { op: 'add'; path: string; value: unknown };

/** Why a pod is (not) injected: the pod annotation wins, then the namespace label. */
async function wanted(pod: Obj, namespace: string | undefined, o: AdmitOptions): Promise<boolean> {
  const annotation = pod.metadata?.annotations?.[INJECT_ANNOTATION];
  if (annotation === 'disabled') return false;
  if (annotation === 'enabled') return true;
  if (!namespace) return false;
  return (await o.namespaceLabels(namespace))?.[INJECT_LABEL] === 'enabled';
}

/**
 * The JSON Patch that turns `before` into the injected pod: "add" replaces a member that exists, so whole
 * maps and lists are set; that is safe because the webhook sees the pod as it is being created.
 */
export function podPatch(before: Obj, after: Obj): PatchOp[] {
  const ops: PatchOp[] = [];
  if (!before.metadata) ops.push({ op: 'add', path: '/metadata', value: {} });
  for (const key of ['labels', 'annotations'] as const) {
    if (JSON.stringify(before.metadata?.[key]) !== JSON.stringify(after.metadata[key])) ops.push({ op: 'add', path: `/metadata/${key}`, value: after.metadata[key] });
  }
  for (const key of ['initContainers', 'volumes'] as const) {
    if (JSON.stringify(before.spec?.[key]) !== JSON.stringify(after.spec[key])) ops.push({ op: 'add', path: `/spec/${key}`, value: after.spec[key] });
  }
  return ops;
}

/** Answers one AdmissionReview (v1). Throws HttpError(400) only for a body that is not one. */
export async function admit(review: unknown, o: AdmitOptions): Promise<AdmissionReview> {
  const r = review as AdmissionReview;
  if (typeof r !== 'object' || r === null || r.kind !== 'AdmissionReview' || typeof r.request?.uid !== 'string') {
    throw new HttpError(400, 'expected an AdmissionReview (admission.k8s.io/v1) with a request');
  }
  const req = r.request;
  const answer = (extra: Partial<AdmissionResponse> = {}): AdmissionReview => ({
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: req.uid, allowed: true, ...extra },
  });
  const pod = req.object;
  if (req.kind?.kind !== 'Pod' || (req.operation && req.operation !== 'CREATE') || !pod || typeof pod !== 'object') return answer();
  const spec = pod.spec as Obj | undefined;
  const initContainers = Array.isArray(spec?.initContainers) ? spec!.initContainers : [];
  if (initContainers.some((c: Obj) => c?.name === PROXY_CONTAINER)) return answer(); // injected already (mesh inject)
  if (!(await wanted(pod, req.namespace ?? pod.metadata?.namespace, o))) return answer();
  const template = structuredClone({ metadata: pod.metadata ?? {}, spec: pod.spec });
  const result = injectTemplate(template, o.inject);
  const warnings = result.warnings.map((w) => `mesh: ${w}`);
  if (!result.injected) return answer(warnings.length ? { warnings } : {});
  const patch = podPatch(pod, template);
  return answer({
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
    ...(warnings.length ? { warnings } : {}),
  });
}

export interface WebhookServerOptions extends AdmitOptions {
  tls: { cert: string; key: string };
  log?: (line: string) => void;
}

/** HTTPS: POST /inject with an AdmissionReview; GET /ready. Pod specs can be large: bodies up to 4 MiB. */
export function createWebhookServer(o: WebhookServerOptions): https.Server {
  const server = https.createServer({ cert: o.tls.cert, key: o.tls.key, minVersion: 'TLSv1.2' });
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/ready') return sendJson(res, 200, { ready: true });
    if (req.method !== 'POST' || path !== '/inject') throw new HttpError(404, `no such API: ${req.method} ${path}`);
    let body: unknown;
    try {
      body = JSON.parse((await readBody(req, 4 * 1024 * 1024)).toString('utf8'));
    } catch (err) {
      throw err instanceof HttpError ? err : new HttpError(400, 'request body is not valid JSON');
    }
    const review = await admit(body, o);
    const p = review.response!;
    const req2 = (body as AdmissionReview).request!;
    o.log?.(`webhook: pod ${req2.namespace ?? ''}/${req2.object?.metadata?.name ?? req2.object?.metadata?.generateName ?? '?'} ${p.patch ? 'injected' : 'admitted unchanged'}`);
    sendJson(res, 200, review);
  }
  server.on('request', (req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (!res.headersSent) sendJson(res, status, { error: (err as Error).message });
      else res.destroy();
    });
  });
  return server;
}
