// Where `mesh route` reads and writes routes on the local platform: the control plane's admin API
// (GET/PUT /v1/config/routes, GET /v1/endpoints), with failures as one-line errors.
import type { EndpointRecord } from '../../api/types.js';
import { adminCall, updateConfig, type ConfigEdit, type StoredConfig } from './admin.js';
import type { StateDir } from './state.js';

export type { ConfigEdit, StoredConfig } from './admin.js';

/** What the route command needs from a platform (the Kubernetes one will read CRDs instead). */
export interface RouteStore {
  routes(): Promise<StoredConfig>;
  /** Applies edit to the stored document: the snapshot version carrying the result, or undefined if unchanged. */
  updateRoutes(edit: ConfigEdit): Promise<StoredConfig | undefined>;
  endpoints(): Promise<EndpointRecord[]>;
}

export function localRouteStore(state: StateDir): RouteStore {
  return {
    routes: () => adminCall<StoredConfig>(state, 'GET', '/v1/config/routes'),
    // Read, edit, and write at the version read: a concurrent write is never lost (retried on a conflict).
    updateRoutes: (edit) => updateConfig(state, 'routes', edit),
    endpoints: () => adminCall<EndpointRecord[]>(state, 'GET', '/v1/endpoints'),
  };
}
