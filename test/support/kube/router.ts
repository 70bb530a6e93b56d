// HTTP front end: authentication, URL routing (discovery, resources, subresources, watch, proxy) and Status errors.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Authority, UserInfo } from './auth.js';
import { forward, resolveBackend } from './proxy.js';
import { apiVersionOf, type ResourceType } from './resources.js';
import { parseFieldSelector, parseLabelSelector, type Matcher } from './selectors.js';
import type { ObjectStore } from './store.js';
import { errors, StatusError, type Json, type JsonObject } from './types.js';
import { createObject, deleteCollection, getScale, patchObject, patchScale, updateObject, writeScale, type VerbContext } from './verbs.js';
import type { WatchHub } from './watch.js';

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType?: string;
  user?: string;
}

export interface RouterDeps {
  store: ObjectStore;
  hub: WatchHub;
  auth: Authority;
  backends: Map<string, string>;
  versionInfo: JsonObject;
  anonymous: boolean;
  requests: RecordedRequest[];
  /** Runs before each request is handled (after it is recorded), e.g. to play a concurrent writer. */
  hooks: { beforeRequest?: (r: RecordedRequest) => void | Promise<void> };
}

function send(res: ServerResponse, code: number, body: Json): void {
  if (res.headersSent) return void res.destroy();
  res.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Audit-Id': randomUUID() });
  res.end(JSON.stringify(body));
}

export async function handle(deps: RouterDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    await route(deps, req, res);
  } catch (e) {
    const err = e instanceof StatusError ? e : new StatusError(500, 'InternalError', `Internal error occurred: ${(e as Error).message}`);
    send(res, err.code, err.toStatus());
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const mediaType = (req: IncomingMessage) => (req.headers['content-type'] ?? 'application/json').split(';')[0].trim().toLowerCase();

async function readObject(req: IncomingMessage): Promise<Json> {
  const type = mediaType(req);
  const raw = await readBody(req);
  if (type === 'application/yaml') {
    const yaml = await import('js-yaml');
    return yaml.load(raw) as Json;
  }
  if (type !== 'application/json') throw errors.unsupportedMediaType(type, ['application/json', 'application/yaml']);
  try {
    return JSON.parse(raw) as Json;
  } catch (e) {
    throw errors.badRequest(`error decoding request body: ${(e as Error).message}`);
  }
}

async function route(deps: RouterDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://fake');
  const raw = url.pathname.split('/').filter(Boolean);
  const method = req.method ?? 'GET';
  const record: RecordedRequest = { method, path: url.pathname, query: Object.fromEntries(url.searchParams), contentType: req.headers['content-type'] };
  deps.requests.push(record);
  if (deps.requests.length > 1000) deps.requests.shift();
  await deps.hooks.beforeRequest?.(record);
  let user: UserInfo;
  try {
    user = deps.auth.authenticate(req.headers.authorization, req.socket);
  } catch (e) {
    if (!deps.anonymous || req.headers.authorization) throw e;
    user = { username: 'system:anonymous', groups: ['system:unauthenticated'] };
  }
  record.user = user.username;

  const reg = deps.store.registry;
  const discovery = (body: JsonObject | undefined) => {
    if (method !== 'GET') throw errors.methodNotAllowed();
    if (!body) throw errors.pathNotFound();
    send(res, 200, body);
  };
  const [a, b, c] = raw;
  if (raw.length === 1 && (a === 'healthz' || a === 'livez' || a === 'readyz')) {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    return void res.end('ok');
  }
  if (raw.length === 1 && a === 'version') return discovery(deps.versionInfo);
  if (raw.length === 1 && a === 'api') {
    const host = req.socket.localAddress && `${req.socket.localAddress}:${req.socket.localPort}`;
    return discovery({ kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: host ?? '' }] });
  }
  if (raw.length === 2 && a === 'api') return discovery(reg.resourceList('', b));
  if (raw.length === 1 && a === 'apis') return discovery(reg.groupList());
  if (raw.length === 2 && a === 'apis') return discovery(reg.group(b));
  if (raw.length === 3 && a === 'apis') return discovery(reg.resourceList(b, c));
  if (a === 'api' && raw.length > 2 && reg.hasGroupVersion('', b)) return resource(deps, req, res, url, user, '', b, raw.slice(2));
  if (a === 'apis' && raw.length > 3 && reg.hasGroupVersion(b, c)) return resource(deps, req, res, url, user, b, c, raw.slice(3));
  throw errors.pathNotFound();
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw errors.badRequest(`invalid URL escape in path segment "${s}"`);
  }
}

function verbOf(method: string, named: boolean, watch: boolean): string {
  if (method === 'GET') return watch ? 'watch' : named ? 'get' : 'list';
  if (method === 'POST') return 'create';
  if (method === 'PUT') return 'update';
  if (method === 'PATCH') return 'patch';
  if (method === 'DELETE') return named ? 'delete' : 'deletecollection';
  throw errors.methodNotAllowed();
}

function parseDryRun(q: URLSearchParams): boolean {
  const values = q.getAll('dryRun');
  const bad = values.find((v) => v !== 'All');
  if (bad !== undefined) throw errors.invalid('CreateOptions', 'meta.k8s.io', '', [{ reason: 'FieldValueNotSupported', field: 'dryRun', message: `Unsupported value: "${bad}": supported values: "All"` }]);
  return values.length > 0;
}

async function resource(deps: RouterDeps, req: IncomingMessage, res: ServerResponse, url: URL, user: UserInfo, group: string, version: string, rawSegs: string[]): Promise<void> {
  const { store } = deps;
  let raw = rawSegs;
  const watchPath = raw[0] === 'watch';
  if (watchPath) raw = raw.slice(1);
  const segs = raw.map(decodeSegment);
  const nsPath = segs[0] === 'namespaces' && segs.length >= 3 && segs[2] !== 'status' && segs[2] !== 'finalize';
  const [ns, plural, name, sub] = nsPath ? [segs[1], segs[2], segs[3], segs[4]] : [undefined, segs[0], segs[1], segs[2]];
  const restAt = nsPath ? 5 : 3;
  const rt = store.registry.find(group, version, plural);
  if (!rt || (!rt.namespaced && ns !== undefined) || (rt.namespaced && ns === undefined && name !== undefined)) throw errors.pathNotFound();
  if (sub !== 'proxy' && segs.length > restAt) throw errors.pathNotFound();
  const q = url.searchParams;
  const method = req.method ?? 'GET';
  const isWatch = watchPath || q.get('watch') === 'true' || q.get('watch') === '1';
  const verb = verbOf(method, name !== undefined, isWatch);
  deps.auth.authorize(user, { verb, group, resource: plural, subresource: sub, namespace: ns, name });

  if (sub === 'proxy' && rt.plural === 'services' && !group && ns !== undefined && name !== undefined) {
    const backend = resolveBackend(store, deps.backends, ns, name);
    const rest = raw.slice(restAt).map(decodeSegment).join('/');
    return forward(req, res, backend, rest, url.search);
  }
  const userAgent = String(req.headers['user-agent'] ?? 'unknown');
  const contentType = mediaType(req);
  const manager = q.get('fieldManager') ?? (contentType === 'application/apply-patch+yaml' ? '' : userAgent.split('/')[0]);
  const ctx: VerbContext = { store, rt, version, ns: ns ?? '', manager, dryRun: parseDryRun(q) };
  const force = q.get('force') === 'true';

  if (rt.createOnly) {
    if (method !== 'POST' || name !== undefined) throw errors.methodNotAllowed();
    const reviewed = deps.auth.review(plural, await readObject(req), user);
    return send(res, 201, { ...reviewed, apiVersion: apiVersionOf(rt, version), kind: rt.kind });
  }
  if (name === undefined) {
    if (method === 'GET' && isWatch) return startWatch(deps, res, ctx, q);
    if (method === 'GET') return send(res, 200, listBody(ctx, q));
    if (method === 'POST') return send(res, 201, createObject(ctx, await readObject(req)).object);
    if (method === 'DELETE') {
      const items = deleteCollection(ctx, matcher(rt, q)).map((o) => asListItem(rt, o));
      return send(res, 200, { kind: `${rt.kind}List`, apiVersion: apiVersionOf(rt, version), metadata: { resourceVersion: String(store.resourceVersion) }, items });
    }
    throw errors.methodNotAllowed();
  }
  if (sub === undefined || (sub === 'status' && rt.status)) {
    const subresource = sub === 'status' ? 'status' : undefined;
    if (method === 'GET') return send(res, 200, store.present(rt, store.require(rt, ctx.ns, name), version));
    if (method === 'PUT') return send(res, 200, updateObject(ctx, name, await readObject(req), subresource).object);
    if (method === 'PATCH') {
      const written = await patchObject(ctx, name, contentType, await readBody(req), force, subresource);
      return send(res, written.created ? 201 : 200, written.object);
    }
    if (method === 'DELETE' && !subresource) return deleteOne(deps, req, res, ctx, rt, name);
    throw errors.methodNotAllowed();
  }
  if (sub === 'scale' && rt.scale) {
    if (method === 'GET') return send(res, 200, getScale(ctx, name));
    if (method === 'PUT') return send(res, 200, writeScale(ctx, name, await readObject(req)));
    if (method === 'PATCH') return send(res, 200, await patchScale(ctx, name, contentType, await readBody(req)));
    throw errors.methodNotAllowed();
  }
  throw errors.pathNotFound();
}

function matcher(rt: ResourceType, q: URLSearchParams): Matcher {
  const label = parseLabelSelector(q.get('labelSelector'));
  const field = parseFieldSelector(q.get('fieldSelector'), rt.fieldLabels);
  return (o) => label(o) && field(o);
}

/** Built-in typed lists carry no apiVersion/kind on their items; custom resource lists do. */
function asListItem(rt: ResourceType, o: JsonObject): JsonObject {
  if (rt.crdName) return o;
  const { apiVersion: _a, kind: _k, ...rest } = o;
  return rest;
}

/** A list response; limit/continue paginate over the current state (not a snapshot, unlike etcd). */
function listBody(ctx: VerbContext, q: URLSearchParams): JsonObject {
  const { store, rt, version } = ctx;
  const all = store.list(rt, ctx.ns || undefined, matcher(rt, q));
  const keyOf = (i: number) => `${all[i].metadata.namespace ?? ''}/${all[i].metadata.name ?? ''}`;
  const limit = Number(q.get('limit') ?? 0);
  let start = 0;
  const token = q.get('continue');
  if (token) {
    let last: string;
    try {
      last = String((JSON.parse(Buffer.from(token, 'base64url').toString()) as { start: string }).start);
    } catch {
      throw errors.badRequest('continue key is not valid: illegal base64 data');
    }
    start = all.findIndex((_, i) => keyOf(i) > last);
    if (start < 0) start = all.length;
  }
  const end = limit > 0 ? Math.min(start + limit, all.length) : all.length;
  const metadata: JsonObject = { resourceVersion: String(store.resourceVersion) };
  if (end < all.length) {
    metadata.continue = Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: store.resourceVersion, start: keyOf(end - 1) })).toString('base64url');
    metadata.remainingItemCount = all.length - end;
  }
  const items = all.slice(start, end).map((o) => asListItem(rt, store.present(rt, o, version)));
  return { kind: `${rt.kind}List`, apiVersion: apiVersionOf(rt, version), metadata, items };
}

function startWatch(deps: RouterDeps, res: ServerResponse, ctx: VerbContext, q: URLSearchParams): void {
  const timeout = q.get('timeoutSeconds');
  deps.hub.start(res, {
    rt: ctx.rt, version: ctx.version, ns: ctx.ns || undefined, match: matcher(ctx.rt, q),
    resourceVersion: q.get('resourceVersion') ?? undefined,
    allowBookmarks: q.get('allowWatchBookmarks') === 'true',
    sendInitialEvents: q.get('sendInitialEvents') === 'true',
    timeoutSeconds: timeout === null ? undefined : Number(timeout),
  });
}

async function deleteOne(deps: RouterDeps, req: IncomingMessage, res: ServerResponse, ctx: VerbContext, rt: ResourceType, name: string): Promise<void> {
  const raw = await readBody(req);
  let options: JsonObject = {};
  try {
    if (raw.trim()) options = JSON.parse(raw) as JsonObject;
  } catch (e) {
    throw errors.badRequest(`error decoding DeleteOptions: ${(e as Error).message}`);
  }
  const pre = (options.preconditions ?? {}) as { uid?: string; resourceVersion?: string };
  const dryRun = ctx.dryRun || (Array.isArray(options.dryRun) && options.dryRun.includes('All'));
  const { object, gone } = deps.store.delete(rt, ctx.ns, name, { version: ctx.version, dryRun, uid: pre.uid, resourceVersion: pre.resourceVersion });
  if (!gone) return send(res, 202, object);
  if (rt.returnDeleted) return send(res, 200, object);
  const details: JsonObject = { name, kind: rt.plural, uid: object.metadata.uid ?? '' };
  if (rt.group) details.group = rt.group;
  send(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details });
}
