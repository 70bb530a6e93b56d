// Where `mesh policy` reads and writes on the local platform: the control plane's admin API
// (GET/PUT /v1/config/policies, GET /v1/endpoints), with failures as one-line errors.
import type { EndpointRecord } from '../../control/registry.js';
import { adminCall, type StoredConfig } from './admin.js';
import type { StateDir } from './state.js';

export type { StoredConfig } from './admin.js';

/** What the policy command needs from a platform (the Kubernetes one reads CRDs instead). */
export interface PolicyStore {
  policies(): Promise<StoredConfig>;
  /** Stores the whole policies document; resolves with the snapshot version that carries it. */
  putPolicies(value: unknown): Promise<StoredConfig>;
  endpoints(): Promise<EndpointRecord[]>;
}

export function localPolicyStore(state: StateDir): PolicyStore {
  return {
    policies: () => adminCall<StoredConfig>(state, 'GET', '/v1/config/policies'),
    putPolicies: (value) => adminCall<StoredConfig>(state, 'PUT', '/v1/config/policies', value, { what: 'the policies' }),
    endpoints: () => adminCall<EndpointRecord[]>(state, 'GET', '/v1/endpoints'),
  };
}
