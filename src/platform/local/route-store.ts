// Where `mesh route` reads and writes routes on the local platform: the control plane's admin API
// (GET/PUT /v1/config/routes, GET /v1/endpoints), with failures as one-line errors.
import type { EndpointRecord } from '../../control/registry.js';
import { adminCall, type StoredConfig } from './admin.js';
import type { StateDir } from './state.js';

export type { StoredConfig } from './admin.js';

/** What the route command needs from a platform (the Kubernetes one will read CRDs instead). */
export interface RouteStore {
  routes(): Promise<StoredConfig>;
  /** Stores the whole routes document; resolves with the snapshot version that carries it. */
  putRoutes(value: unknown): Promise<StoredConfig>;
  endpoints(): Promise<EndpointRecord[]>;
}

export function localRouteStore(state: StateDir): RouteStore {
  return {
    routes: () => adminCall<StoredConfig>(state, 'GET', '/v1/config/routes'),
    putRoutes: (value) => adminCall<StoredConfig>(state, 'PUT', '/v1/config/routes', value, { what: 'the routes' }),
    endpoints: () => adminCall<EndpointRecord[]>(state, 'GET', '/v1/endpoints'),
  };
}
