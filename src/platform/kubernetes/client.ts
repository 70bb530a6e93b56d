// The Kubernetes API as mesh uses it: target selection like kubectl, server-side apply, reads that
// answer undefined for 404, and one-line errors. @kubernetes/client-node is heavy: loaded on first use.
import { existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { KubeConfig, KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import { MeshError } from '../../util/errors.js';

export const FIELD_MANAGER = 'mesh';
const SA_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';
/** A prefix for the ServiceAccount mount (client-node's pathPrefix), so tests can play "in a pod". */
const saRoot = () => process.env.MESH_INCLUSTER_ROOT ?? '';

export interface TargetOptions {
  /** --kubeconfig: one file, wins over KUBECONFIG. */
  kubeconfig?: string;
  /** --context: a context of the loaded config instead of its current-context. */
  context?: string;
}

/** A write refused because the object changed (or appeared, or went) since it was read: 409, or 404 on a replace. */
export class ConflictError extends Error {
  constructor(readonly object: string, message: string) {
    super(message);
    this.name = 'ConflictError';
  }
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}

type ClientNode = typeof import('@kubernetes/client-node');
let loaded: Promise<ClientNode> | undefined;
const clientNode = () => (loaded ??= import('@kubernetes/client-node'));

/** Where the config came from, for messages: a file list, or in-cluster. */
function configSource(o: TargetOptions): { files: string[] } | { inCluster: true } | undefined {
  if (o.kubeconfig) return { files: [o.kubeconfig] };
  const env = process.env.KUBECONFIG;
  if (env) return { files: env.split(delimiter).filter(Boolean) };
  const home = join(process.env.HOME || homedir(), '.kube', 'config');
  if (existsSync(home)) return { files: [home] };
  if (process.env.KUBERNETES_SERVICE_HOST && existsSync(saRoot() + SA_TOKEN)) return { inCluster: true };
  return undefined;
}

/** Loads the target the way kubectl does: --kubeconfig, then KUBECONFIG (merged), ~/.kube/config, in-cluster. */
export async function loadKubeConfig(o: TargetOptions = {}): Promise<KubeConfig> {
  const source = configSource(o);
  if (!source) {
    throw new MeshError('no Kubernetes cluster configured (no KUBECONFIG, no ~/.kube/config, not in a pod)',
      'pass --kubeconfig <file>, set KUBECONFIG, or use the local platform (drop --platform kubernetes)');
  }
  const k8s = await clientNode();
  const kc = new k8s.KubeConfig();
  if ('inCluster' in source) {
    kc.loadFromCluster(saRoot());
  } else {
    for (const [i, file] of source.files.entries()) {
      if (!existsSync(file)) throw new MeshError(`kubeconfig ${file} does not exist`, 'check --kubeconfig or KUBECONFIG');
      try {
        if (i === 0) kc.loadFromFile(file);
        else {
          const more = new k8s.KubeConfig();
          more.loadFromFile(file);
          kc.mergeConfig(more, !!kc.getCurrentContext()); // as kubectl: the first file that sets current-context wins
        }
      } catch (err) {
        throw new MeshError(`kubeconfig ${file} cannot be read: ${(err as Error).message.split('\n')[0]}`, 'check the file, or pass another with --kubeconfig');
      }
    }
  }
  if (o.context) {
    if (!kc.getContextObject(o.context)) {
      const known = kc.getContexts().map((c) => c.name).join(', ') || 'none';
      throw new MeshError(`context '${o.context}' is not in the kubeconfig`, `known contexts: ${known}`);
    }
    kc.setCurrentContext(o.context);
  }
  if (!kc.getCurrentContext() || !kc.getCurrentCluster()) {
    throw new MeshError('the kubeconfig has no current context', 'pass --context <name> or run kubectl config use-context <name>');
  }
  return kc;
}

/** The API server did not answer at all (as opposed to answering with an error): callers may go on without it. */
export class KubeUnreachable extends MeshError {}

export class KubeClient {
  readonly contextName: string;
  readonly server: string;

  private constructor(
    readonly kc: KubeConfig,
    private readonly k8s: ClientNode,
    private readonly objects: KubernetesObjectApi,
  ) {
    this.contextName = kc.getCurrentContext() === 'inClusterContext' ? 'in-cluster' : kc.getCurrentContext();
    this.server = kc.getCurrentCluster()?.server ?? '';
  }

  static async connect(o: TargetOptions = {}): Promise<KubeClient> {
    const kc = await loadKubeConfig(o);
    const k8s = await clientNode();
    return new KubeClient(kc, k8s, k8s.KubernetesObjectApi.makeApiClient(kc));
  }

  static async fromConfig(kc: KubeConfig): Promise<KubeClient> {
    const k8s = await clientNode();
    return new KubeClient(kc, k8s, k8s.KubernetesObjectApi.makeApiClient(kc));
  }

  /** Typed API clients (CoreV1Api, ...) for calls the generic object API does not cover. */
  api<T>(make: (k8s: ClientNode) => new (...args: never[]) => T): T {
    return this.kc.makeApiClient(make(this.k8s) as never) as T;
  }

  /**
   * Server-side apply as field manager "mesh", forcing ownership of the fields mesh sets. The body goes out as
   * written (kubectl's wire names): client-node's typed serializer would drop fields whose wire name differs
   * from its TypeScript name, such as a CRD schema's enum.
   */
  async apply<T extends KubernetesObject>(obj: T): Promise<T> {
    return this.call(`apply ${describe(obj)}`, async () => {
      const path = await (this.objects as unknown as { specUriPath(o: KubernetesObject, a: string): Promise<string> }).specUriPath(structuredClone(obj), 'patch');
      const url = new URL(this.server.replace(/\/+$/, '') + path);
      url.searchParams.set('fieldManager', FIELD_MANAGER);
      url.searchParams.set('force', 'true');
      const { status, body } = await this.raw('PATCH', url, JSON.stringify(obj), 'application/apply-patch+yaml');
      if (status < 200 || status > 299) throw new this.k8s.ApiException(status, 'apply failed', body, {});
      return JSON.parse(body) as T;
    });
  }

  /**
   * Writes that never overwrite a concurrent change, as kubectl edit does: create (POST: 409 if it exists by
   * now), replace (PUT carrying the resourceVersion it was read at: 409 if it changed since) and delete with that
   * resourceVersion as a precondition. Those refusals throw ConflictError; a delete of what is gone is done.
   */
  async guardedWrite<T extends KubernetesObject>(verb: 'create' | 'replace' | 'delete', obj: T): Promise<T | undefined> {
    const what = describe(obj);
    return this.call(`${verb} ${what}`, async () => {
      const path = await (this.objects as unknown as { specUriPath(o: KubernetesObject, a: string): Promise<string> }).specUriPath(structuredClone(obj), verb);
      const url = new URL(this.server.replace(/\/+$/, '') + path);
      if (verb !== 'delete') url.searchParams.set('fieldManager', FIELD_MANAGER);
      const body = verb === 'delete'
        ? JSON.stringify({ apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: 'Background', preconditions: { resourceVersion: obj.metadata?.resourceVersion } })
        : JSON.stringify(obj);
      const r = await this.raw(verb === 'create' ? 'POST' : verb === 'replace' ? 'PUT' : 'DELETE', url, body);
      if (r.status === 409 || (r.status === 404 && verb === 'replace')) {
        let message = `HTTP ${r.status}`;
        try {
          message = (JSON.parse(r.body) as { message?: string }).message ?? message;
        } catch {
          // not a Status body
        }
        throw new ConflictError(what, message);
      }
      if (r.status === 404 && verb === 'delete') return undefined;
      if (r.status < 200 || r.status > 299) throw new this.k8s.ApiException(r.status, `${verb} failed`, r.body, {});
      return verb === 'delete' ? undefined : JSON.parse(r.body) as T;
    });
  }

  /** The server's version, and its clock (the Date header) for skew checks. */
  async version(): Promise<{ gitVersion: string; major: number; minor: number; serverTime?: number }> {
    return this.call('read the server version', async () => {
      const r = await this.raw('GET', new URL(this.server.replace(/\/+$/, '') + '/version'));
      if (r.status !== 200) throw new this.k8s.ApiException(r.status, 'version failed', r.body, {});
      const v = JSON.parse(r.body) as { gitVersion: string; major: string; minor: string };
      const date = Date.parse(String(r.headers.date ?? ''));
      return { gitVersion: v.gitVersion, major: Number(v.major), minor: parseInt(v.minor, 10), serverTime: Number.isNaN(date) ? undefined : date };
    });
  }

  /** SelfSubjectAccessReview: may the current user do this? */
  async canI(verb: string, group: string, resource: string, namespace?: string): Promise<boolean> {
    return this.call(`ask whether it can ${verb} ${resource}`, async () => {
      const body = JSON.stringify({
        apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview',
        spec: { resourceAttributes: { verb, group, resource, ...(namespace ? { namespace } : {}) } },
      });
      const r = await this.raw('POST', new URL(this.server.replace(/\/+$/, '') + '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews'), body, 'application/json');
      if (r.status < 200 || r.status > 299) throw new this.k8s.ApiException(r.status, 'access review failed', r.body, {});
      return (JSON.parse(r.body) as { status?: { allowed?: boolean } }).status?.allowed === true;
    });
  }

  /** POST of a JSON body to an API path (a review: TokenReview, SubjectAccessReview); the answer parsed. */
  async post<T>(path: string, body: unknown, what: string): Promise<T> {
    return this.call(what, async () => {
      const r = await this.raw('POST', new URL(this.server.replace(/\/+$/, '') + path), JSON.stringify(body));
      if (r.status < 200 || r.status > 299) throw new this.k8s.ApiException(r.status, `${what} failed`, r.body, {});
      return JSON.parse(r.body) as T;
    });
  }

  /** One request with the kubeconfig's TLS and credentials. */
  private async raw(method: string, url: URL, body?: string, contentType = 'application/json'): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
    // Node sends a DELETE's body without a length unless told: the server would read it as the next request.
    const length = body === undefined ? {} : { 'Content-Length': Buffer.byteLength(body) };
    const opts: https.RequestOptions = { method, headers: { 'Content-Type': contentType, Accept: 'application/json', ...length } };
    await this.kc.applyToHTTPSOptions(opts);
    const request = url.protocol === 'http:' ? http.request : https.request;
    return new Promise((resolve, reject) => {
      const req = request(url, opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
        res.on('error', reject);
      });
      req.setTimeout(30_000, () => req.destroy(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** The object, or undefined when it (or its kind) does not exist. */
  async read<T extends KubernetesObject>(ref: ObjectRef): Promise<T | undefined> {
    try {
      return (await this.objects.read({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } })) as T;
    } catch (err) {
      if (this.isNotFound(err)) return undefined;
      throw this.wrap(err, `read ${describe(ref)}`);
    }
  }

  async list<T extends KubernetesObject>(apiVersion: string, kind: string, o: { namespace?: string; labelSelector?: string } = {}): Promise<T[]> {
    try {
      const r = await this.objects.list(apiVersion, kind, o.namespace, undefined, undefined, undefined, undefined, o.labelSelector);
      return r.items.map((i) => ({ apiVersion, kind, ...i })) as T[];
    } catch (err) {
      if (this.isNotFound(err)) return [];
      throw this.wrap(err, `list ${kind}`);
    }
  }

  /** Deletes; true if it was there. */
  async delete(ref: ObjectRef): Promise<boolean> {
    try {
      await this.objects.delete({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } },
        undefined, undefined, undefined, undefined, 'Background');
      return true;
    } catch (err) {
      if (this.isNotFound(err)) return false;
      throw this.wrap(err, `delete ${describe(ref)}`);
    }
  }

  private isNotFound(err: unknown): boolean {
    if (err instanceof this.k8s.ApiException) return err.code === 404;
    // KubernetesObjectApi resolves kinds through discovery and says so in plain errors when a kind is unknown.
    return err instanceof Error && /Unrecognized API version and kind|not found/i.test(err.message) && !(err as NodeJS.ErrnoException).code;
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ConflictError) throw err; // the caller re-reads and retries
      throw this.wrap(err, what);
    }
  }

  /** One line a person can act on, from an ApiException (its Status message) or a connection error. */
  wrap(err: unknown, what: string): MeshError {
    if (err instanceof MeshError) return err;
    if (err instanceof this.k8s.ApiException) {
      let message = `HTTP ${err.code}`;
      try {
        const status = JSON.parse(String(err.body)) as { message?: string };
        if (status.message) message = status.message;
      } catch {
        // not a Status body
      }
      const hint = err.code === 401 ? 'the credentials of this context were refused; log in again or pick another --context'
        : err.code === 403 ? 'ask for the permission, or use a context with more rights'
          : `context ${this.contextName} (${this.server})`;
      return new MeshError(`cannot ${what}: ${message}`, hint);
    }
    const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
    const code = e?.code ?? e?.cause?.code;
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'ETIMEDOUT' || code === 'ECONNRESET' || /ECONNREFUSED|fetch failed/.test(String(e?.message))) {
      return new KubeUnreachable(`cannot reach the Kubernetes API at ${this.server} (context ${this.contextName})`, 'check that the cluster is up, or pick another --context');
    }
    return new MeshError(`cannot ${what}: ${(err as Error)?.message?.split('\n')[0] ?? String(err)}`, `context ${this.contextName} (${this.server})`);
  }
}

export function describe(ref: { kind?: string; metadata?: { name?: string; namespace?: string }; name?: string; namespace?: string }): string {
  const name = 'metadata' in ref && ref.metadata ? ref.metadata.name : (ref as ObjectRef).name;
  const ns = 'metadata' in ref && ref.metadata ? ref.metadata.namespace : (ref as ObjectRef).namespace;
  return `${(ref.kind ?? 'object').toLowerCase()} ${ns ? `${ns}/` : ''}${name ?? ''}`;
}
