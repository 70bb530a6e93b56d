// The control plane's HTTP API as a table: each route is a method, a path (or a path prefix), who may call it and a
// handler, so what a caller needs is read in one line rather than spread through an if-chain. An unknown path is
// 404, a known one with another method 405 with Allow, and a caller the route does not admit is refused before its
// handler runs.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Identity } from '../identity/spiffe.js';
import type { TapCaller } from './tap-access.js';
import { HttpError } from '../util/http.js';

/**
 * Who may call a route. anyone: no credential (the handler may still check one, as certificate bootstrap does);
 * proxy: a valid mesh client certificate; admin: the admin credential; reader: the admin credential, unless the
 * platform guards the read-only views itself (Kubernetes: the API server's service proxy and RBAC); tapper: the admin
 * credential, or a user the platform vouches for (Kubernetes: a TokenReview of the bearer), each tap then authorized.
 */
export type Caller = 'anyone' | 'proxy' | 'admin' | 'reader' | 'tapper';

export interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** The caller's mesh identity: set for proxy routes. */
  peer?: Identity;
  /** For a prefix route, the decoded rest of the path after the prefix. */
  rest: string;
  /** Who calls a tapper route. */
  tapper?: TapCaller;
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** The exact path, or with `prefix` every path that starts with it. */
  path: string;
  prefix?: boolean;
  who: Caller;
  handle(c: Call): unknown;
}

export interface Guards {
  /** The caller's mesh identity, or throws 401. */
  proxy(req: IncomingMessage): Identity;
  /** Throws 401 unless the admin credential is presented. */
  admin(req: IncomingMessage): void;
  /** As admin, or nothing where the read-only views are open. */
  reader(req: IncomingMessage): void;
  /** The admin, or the user the platform says the bearer belongs to; throws 401. */
  tapper?(req: IncomingMessage): Promise<TapCaller>;
}

type ByMethod = Map<string, Route>;

/** Compiles the table once; the returned handler throws HttpError for the server's one error writer. */
export function routeTable(routes: readonly Route[], guards: Guards): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const exact = new Map<string, ByMethod>();
  const prefixes: { path: string; methods: ByMethod }[] = [];
  for (const r of routes) {
    let methods = r.prefix ? prefixes.find((p) => p.path === r.path)?.methods : exact.get(r.path);
    if (!methods) {
      methods = new Map();
      if (r.prefix) prefixes.push({ path: r.path, methods });
      else exact.set(r.path, methods);
    }
    if (methods.has(r.method)) throw new Error(`route ${r.method} ${r.path} is in the table twice`);
    methods.set(r.method, r);
  }
  // The longest prefix first, so /v1/tap/ is tried before a shorter one that also matches.
  prefixes.sort((a, b) => b.path.length - a.path.length);

  return async function handle(req, res) {
    const url = new URL(req.url ?? '/', 'https://control');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    // An exact path wins; a method it lacks may still be a prefix route's (DELETE /v1/tap/<id> beside GET /v1/tap/watch).
    const matched: { methods: ByMethod; rest: string }[] = [];
    const e = exact.get(path);
    if (e) matched.push({ methods: e, rest: '' });
    for (const p of prefixes) if (path.startsWith(p.path)) matched.push({ methods: p.methods, rest: path.slice(p.path.length) });
    if (!matched.length) throw new HttpError(404, `no such API: ${method} ${path}`);
    const hit = matched.find((m) => m.methods.has(method));
    if (!hit) {
      const allow = [...new Set(matched.flatMap((m) => [...m.methods.keys()]))].sort().join(', ');
      res.setHeader('allow', allow);
      throw new HttpError(405, `${method} is not allowed on ${path} (allowed: ${allow})`);
    }
    const route = hit.methods.get(method)!;
    let peer: Identity | undefined;
    let tapper: TapCaller | undefined;
    if (route.who === 'proxy') peer = guards.proxy(req);
    else if (route.who === 'admin') guards.admin(req);
    else if (route.who === 'reader') guards.reader(req);
    else if (route.who === 'tapper') {
      if (!guards.tapper) throw new HttpError(401, 'the admin credential is required');
      tapper = await guards.tapper(req);
    }
    let rest = hit.rest;
    try {
      rest = decodeURIComponent(rest);
    } catch {
      throw new HttpError(400, `${path} is not a valid path`);
    }
    await route.handle({ req, res, url, peer, rest, tapper });
  };
}
