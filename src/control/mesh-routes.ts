// The discovery and config part of the control plane's API: proxies register (POST, DELETE /v1/endpoints) and
// long-poll the snapshot (GET /v1/watch); the CLI lists endpoints, reads the snapshot and reads and writes the
// config documents (GET, PUT /v1/config/<kind>) at a resourceVersion.
import type { ServerResponse } from 'node:http';
import { formatIdentity } from '../identity/spiffe.js';
import { checkName, type ConfigKind } from '../model/snapshot.js';
import { HttpError, readJsonBody, sendJson } from '../util/http.js';
import type { StoredConfig } from '../api/config-store.js';
import type { EndpointRecord, RegisterResponse } from '../api/types.js';
import { configVersion, conflictStatus, expectedVersion } from './config-version.js';
import type { Route } from './router.js';
import type { ControlServerOptions } from './server.js';

const CONFIG_KINDS: readonly ConfigKind[] = ['routes', 'policies', 'settings'];

export function meshRoutes(o: ControlServerOptions): Route[] {
  const watchTimeout = o.watchTimeoutMs ?? 20_000;
  const { registry } = o;

  /** A config document with the snapshot version that carries it and its own resourceVersion (also as ETag). */
  function sendConfig(res: ServerResponse, kind: ConfigKind): void {
    const value = registry.getConfig(kind) ?? null;
    const resourceVersion = configVersion(value);
    res.setHeader('etag', `"${resourceVersion}"`);
    sendJson(res, 200, { kind, value, version: registry.snapshot.version, resourceVersion } satisfies StoredConfig & { kind: ConfigKind });
  }

  const config = CONFIG_KINDS.flatMap((kind): Route[] => [
    // Reads are the dashboard's too (reader: on Kubernetes it comes through a port-forward without the admin credential).
    { method: 'GET', path: `/v1/config/${kind}`, who: 'reader', handle: ({ res }) => sendConfig(res, kind) },
    {
      method: 'PUT', path: `/v1/config/${kind}`, who: 'admin', async handle({ req, res, url }) {
        const body = await readJsonBody<unknown>(req);
        // From here to setConfig nothing awaits: the version check and the (atomic) write are one step of this
        // single-threaded server, so no other write can come between them.
        const expected = expectedVersion(req, url);
        const current = configVersion(registry.getConfig(kind) ?? null);
        if (expected !== undefined && expected !== current) {
          o.log?.(`control: refused a write of the ${kind} made at resourceVersion ${expected} (now ${current})`);
          return sendJson(res, 409, conflictStatus(kind, expected, current));
        }
        let value = body;
        const validate = o.validators?.[kind];
        try {
          if (validate) value = validate(body, registry.snapshot);
        } catch (err) {
          throw new HttpError(422, (err as Error).message);
        }
        registry.setConfig(kind, value);
        sendConfig(res, kind);
      },
    },
  ]);

  return [
    {
      method: 'POST', path: '/v1/endpoints', who: 'proxy', async handle({ req, res, peer }) {
        const id = formatIdentity(peer!);
        const b = await readJsonBody<Partial<EndpointRecord>>(req);
        for (const [k, v] of Object.entries({ instance: b.instance, service: b.service, namespace: b.namespace, version: b.version })) {
          try {
            checkName(String(v ?? ''), k);
          } catch (err) {
            throw new HttpError(400, (err as Error).message);
          }
        }
        if (b.namespace !== peer!.namespace || b.service !== peer!.serviceAccount) {
          throw new HttpError(403, `identity ${id} cannot register endpoints of ${b.namespace}/${b.service}`);
        }
        const ingress = b.role === 'ingress';
        const noInbound = ingress || b.role === 'client';
        if (!Number.isInteger(b.port) || b.port! < (noInbound ? 0 : 1) || b.port! > 65535) throw new HttpError(400, 'port must be 1-65535');
        const existing = registry.list().find((e) => e.instance === b.instance);
        if (existing && existing.identity !== id) throw new HttpError(409, `instance ${b.instance} is taken`);
        registry.upsert({
          instance: b.instance!,
          namespace: b.namespace!,
          service: b.service!,
          version: b.version!,
          address: '127.0.0.1',
          port: b.port!,
          identity: id,
          pid: typeof b.pid === 'number' ? b.pid : undefined,
          admin: typeof b.admin === 'string' ? b.admin : undefined,
          configVersion: typeof b.configVersion === 'string' ? b.configVersion : undefined,
          role: ingress ? 'ingress' : b.role === 'client' ? 'client' : 'sidecar',
          registeredAt: existing?.registeredAt ?? new Date().toISOString(),
        });
        sendJson(res, 200, { ok: true, version: registry.snapshot.version } satisfies RegisterResponse);
      },
    },
    {
      method: 'DELETE', path: '/v1/endpoints/', prefix: true, who: 'proxy', handle({ res, peer, rest: instance }) {
        const ep = registry.list().find((e) => e.instance === instance);
        if (ep && ep.identity !== formatIdentity(peer!)) throw new HttpError(403, `${instance} belongs to another identity`);
        registry.remove(instance);
        sendJson(res, 200, { removed: !!ep });
      },
    },
    { method: 'GET', path: '/v1/endpoints', who: 'reader', handle: ({ res }) => sendJson(res, 200, registry.list()) },
    // The snapshot at once if the proxy's is older, else when it changes, else 204 after watchTimeout.
    {
      method: 'GET', path: '/v1/watch', who: 'proxy', handle({ res, url }) {
        if (registry.snapshot.version !== (url.searchParams.get('since') ?? '')) return sendJson(res, 200, registry.snapshot);
        const done = () => {
          clearTimeout(timer);
          registry.off('change', onChange);
          res.off('close', done);
        };
        const onChange = () => {
          done();
          sendJson(res, 200, registry.snapshot);
        };
        const timer = setTimeout(() => {
          done();
          res.writeHead(204).end();
        }, watchTimeout);
        registry.on('change', onChange);
        res.on('close', done);
      },
    },
    { method: 'GET', path: '/v1/snapshot', who: 'reader', handle: ({ res }) => sendJson(res, 200, registry.snapshot) },
    ...config,
  ];
}
