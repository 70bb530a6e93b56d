// Where `mesh policy` reads and writes on the local platform: the control plane's admin API
// (GET/PUT /v1/config/policies, GET /v1/endpoints), with failures as one-line errors.
import { ControlUnreachable } from '../../proxy/control-client.js';
import type { EndpointRecord } from '../../control/registry.js';
import { MeshError } from '../../util/errors.js';
import { adminClient } from './control.js';
import type { StateDir } from './state.js';

export interface StoredConfig {
  value: unknown;
  /** The snapshot version the control plane pushes with this config. */
  version: string;
}

/** What the policy command needs from a platform (the Kubernetes one reads CRDs instead). */
export interface PolicyStore {
  policies(): Promise<StoredConfig>;
  /** Stores the whole policies document; resolves with the snapshot version that carries it. */
  putPolicies(value: unknown): Promise<StoredConfig>;
  endpoints(): Promise<EndpointRecord[]>;
}

export function localPolicyStore(state: StateDir): PolicyStore {
  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const client = adminClient(state);
    try {
      const r = await client.request<T & { error?: string }>(method, path, body, { bearer: state.adminToken(), timeoutMs: 15_000 });
      if (r.status === 200) return r.body;
      const error = r.body?.error ?? `HTTP ${r.status}`;
      if (r.status === 401) throw new MeshError(`the control plane refused the admin credential in ${state.display}`, "the state dir belongs to another install: 'mesh uninstall' and 'mesh install' again");
      if (r.status === 422) throw new MeshError(`the control plane refused the policies: ${error}`, 'nothing was changed');
      throw new MeshError(`the control plane answered ${r.status} to ${method} ${path}: ${error}`, `see ${state.controlLog}`);
    } catch (err) {
      if (err instanceof ControlUnreachable) throw new MeshError(`no control plane is answering for ${state.display}`, "start it with 'mesh install'");
      throw err;
    } finally {
      client.close();
    }
  }
  return {
    policies: () => call<StoredConfig>('GET', '/v1/config/policies'),
    putPolicies: (value) => call<StoredConfig>('PUT', '/v1/config/policies', value),
    endpoints: () => call<EndpointRecord[]>('GET', '/v1/endpoints'),
  };
}
