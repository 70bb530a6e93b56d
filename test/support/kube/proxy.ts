// The services/proxy subresource: /api/v1/namespaces/<ns>/services/[scheme:]<name>[:<port>]/proxy/<path> is forwarded
// to a backend the test registered for "ns/name:port" (or "ns/name"), as the API server forwards to an endpoint.
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { ObjectStore } from './store.js';
import { errors, isObject, StatusError } from './types.js';

export function parseProxyTarget(segment: string): { name: string; port: string } {
  const parts = segment.split(':');
  if (parts.length >= 3) return { name: parts[1], port: parts[2] };
  return { name: parts[0], port: parts[1] ?? '' };
}

/** Finds the backend URL for a service proxy request; 404 without the Service, 503 without a registered backend. */
export function resolveBackend(store: ObjectStore, backends: ReadonlyMap<string, string>, ns: string, segment: string): string {
  const { name, port } = parseProxyTarget(segment);
  const rt = store.registry.find('', 'v1', 'services');
  const svc = rt ? store.peek(rt, ns, name) : undefined;
  if (!rt || !svc) throw errors.notFound({ group: '', plural: 'services' }, name);
  const candidates = [`${ns}/${name}:${port}`];
  if (!port) {
    // No port named: the real server uses the service's only port; try each declared port, then the bare name.
    const ports = isObject(svc.spec) && Array.isArray(svc.spec.ports) ? svc.spec.ports.filter(isObject) : [];
    for (const p of ports) candidates.push(`${ns}/${name}:${String(p.port)}`, `${ns}/${name}:${String(p.name ?? '')}`);
    candidates.push(`${ns}/${name}`);
  }
  for (const key of candidates) {
    const url = backends.get(key);
    if (url) return url;
  }
  throw new StatusError(503, 'ServiceUnavailable', `no endpoints available for service "${name}"`);
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host', 'authorization']);

/** Streams the request to backend + path and the response back; resolves when the response is done. */
export function forward(req: IncomingMessage, res: ServerResponse, backend: string, path: string, search: string): Promise<void> {
  const target = new URL(backend);
  const base = target.pathname.replace(/\/$/, '');
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
  return new Promise((resolve) => {
    const out = httpRequest({ hostname: target.hostname, port: target.port, method: req.method, path: `${base}/${path}${search}`, headers }, (up) => {
      const resHeaders: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) resHeaders[k] = v;
      res.writeHead(up.statusCode ?? 502, resHeaders);
      up.pipe(res);
      up.on('end', () => resolve());
      up.on('error', () => resolve());
    });
    out.on('error', (e) => {
      if (!res.headersSent) {
        const status = new StatusError(503, 'ServiceUnavailable', `error trying to reach service: ${e.message}`).toStatus();
        res.writeHead(503, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(status));
      } else res.destroy();
      resolve();
    });
    req.pipe(out);
  });
}
