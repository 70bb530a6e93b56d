// What the control plane needs from the platform it runs on; local and Kubernetes implement it.
import type { EndpointRecord } from '../api/types.js';
import type { ConfigKind } from '../model/snapshot.js';
import type { Registry } from './registry.js';

export interface ControlPlatform {
  readonly name: 'local' | 'kubernetes';
  /** Starts keeping the registry current from the platform's own view (Kubernetes: list+watch); once listed. */
  start?(registry: Registry): Promise<void>;
  stop?(): void;
  /** The proxies telemetry scrapes, where the platform knows more than the registry (Kubernetes: every pod). */
  scrapeTargets?(): EndpointRecord[];
  /** Endpoints known before a restart, so a restarted control plane does not push an empty mesh. */
  loadEndpoints(): EndpointRecord[];
  saveEndpoints(endpoints: EndpointRecord[]): void;
  /** A fast liveness signal beyond lease expiry (a local process id, a pod phase). */
  endpointGone(ep: EndpointRecord): boolean;
  /** Stored config documents (routes, policies, settings): a file, or a custom resource. */
  loadConfig(kind: ConfigKind): unknown;
  saveConfig(kind: ConfigKind, value: unknown): void;
}
