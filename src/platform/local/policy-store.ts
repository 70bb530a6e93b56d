// Where `mesh policy` reads and writes on the local platform: the control plane's admin API
// (GET/PUT /v1/config/policies, GET /v1/endpoints), with failures as one-line errors.
import type { EndpointRecord } from '../../api/types.js';
import { adminCall, updateConfig, type ConfigEdit, type StoredConfig } from './admin.js';
import type { StateDir } from './state.js';

/** What the policy command needs from a platform (the Kubernetes one reads CRDs instead). */
export interface PolicyStore {
  policies(): Promise<StoredConfig>;
  /** Applies edit to the stored document: the snapshot version carrying the result, or undefined if unchanged. */
  updatePolicies(edit: ConfigEdit): Promise<StoredConfig | undefined>;
  endpoints(): Promise<EndpointRecord[]>;
}

export function localPolicyStore(state: StateDir): PolicyStore {
  return {
    policies: () => adminCall<StoredConfig>(state, 'GET', '/v1/config/policies'),
    // Read, edit, and write at the version read: a concurrent write is never lost (retried on a conflict).
    updatePolicies: (edit) => updateConfig(state, 'policies', edit),
    endpoints: () => adminCall<EndpointRecord[]>(state, 'GET', '/v1/endpoints'),
  };
}
