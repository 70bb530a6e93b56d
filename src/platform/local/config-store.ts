// Where `mesh route` and `mesh policy` read and write on the local platform: the control plane's admin API
// (GET/PUT /v1/config/<name>, GET /v1/endpoints), with failures as one-line errors.
import type { ConfigName, EditableConfig, StoredConfig } from '../../api/config-store.js';
import type { EndpointRecord } from '../../api/types.js';
import { adminCall } from './admin.js';
import type { StateDir } from './state.js';

export function localConfigStore(state: StateDir, name: ConfigName): EditableConfig {
  const path = `/v1/config/${name}`;
  return {
    name,
    waitsForProxies: true,
    get: () => adminCall<StoredConfig>(state, 'GET', path),
    // At the version read: the control plane refuses it (409) if the document changed since. A control plane older
    // than this CLI sends no resourceVersion; the write is then unconditional, as it was.
    put: (value, read) => adminCall<StoredConfig>(state, 'PUT', read.resourceVersion === undefined ? path : `${path}?resourceVersion=${encodeURIComponent(read.resourceVersion)}`,
      value, { what: `the ${name}`, conflict: `the ${name} in ${state.display} were changed by someone else while mesh wrote them` }),
    endpoints: () => adminCall<EndpointRecord[]>(state, 'GET', '/v1/endpoints'),
  };
}
