// The control plane's view of the local platform: a registry file in the state dir, process liveness.
import type { ControlPlatform } from '../../control/platform.js';
import type { EndpointRecord } from '../../api/types.js';
import type { ConfigKind } from '../../model/snapshot.js';
import { readJson, writeJsonAtomic } from '../../util/fs.js';
import { isAlive, type StateDir } from './state.js';

export class LocalControlPlatform implements ControlPlatform {
  readonly name = 'local' as const;

  constructor(private readonly state: StateDir) {}

  loadEndpoints(): EndpointRecord[] {
    try {
      return readJson<EndpointRecord[]>(this.state.registryPath, 'endpoint registry') ?? [];
    } catch {
      // A corrupt registry is rebuilt from heartbeats within seconds; not worth refusing to start.
      return [];
    }
  }

  saveEndpoints(endpoints: EndpointRecord[]): void {
    writeJsonAtomic(this.state.registryPath, endpoints);
  }

  endpointGone(ep: EndpointRecord): boolean {
    return ep.pid !== undefined && !isAlive(ep.pid);
  }

  loadConfig(kind: ConfigKind): unknown {
    // Unlike the registry, config is the user's: a corrupt file stops the control plane with a clear error.
    return readJson<unknown>(this.state.path('config', `${kind}.json`), `${kind} config`);
  }

  saveConfig(kind: ConfigKind, value: unknown): void {
    writeJsonAtomic(this.state.path('config', `${kind}.json`), value);
  }
}
