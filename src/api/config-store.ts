// One named config document (routes, policies) with a version: read it, write it at the version read, and the
// read-modify-write `mesh route` and `mesh policy` do on it. The local platform keeps it behind the control plane's
// API (GET/PUT /v1/config/<name>), Kubernetes as Route and Policy resources; both implement ConfigStore.
import type { EndpointRecord } from './types.js';
import { MeshError } from '../util/errors.js';

/** A config document as a store holds it (also the body of GET and PUT /v1/config/<name>). */
export interface StoredConfig {
  value: unknown;
  /** The snapshot version the control plane pushes with this config (Kubernetes: the resources' resourceVersion). */
  version: string;
  /** The document's own version, for a conditional write (absent from a control plane older than this CLI). */
  resourceVersion?: string;
}

/**
 * A change to a config document, as a function of the document read: the next document (validated again on every
 * call), or undefined when nothing would change. It may run more than once (after a write conflict).
 */
export type ConfigEdit = (current: unknown) => unknown | undefined;

export type ConfigName = 'routes' | 'policies';

export interface ConfigStore {
  readonly name: ConfigName;
  get(): Promise<StoredConfig>;
  /** Writes value unless the document changed since `read` was got: then throws ConfigConflict. */
  put(value: unknown, read: StoredConfig): Promise<StoredConfig>;
}

/** A config store as the CLI edits it: with the workloads the document may name. */
export interface EditableConfig extends ConfigStore {
  endpoints(): Promise<EndpointRecord[]>;
  /** False where the CLI cannot see which snapshot each proxy applied (Kubernetes): it then does not wait. */
  readonly waitsForProxies: boolean;
}

/** Attempts of a read-modify-write before giving up on a document others keep changing. */
export const WRITE_ATTEMPTS = 3;

/** A write made at a version of the document that is no longer current (the control plane's 409, Kubernetes' 409). */
export class ConfigConflict extends MeshError {
  constructor(message: string, hint: string | undefined, /** What to say when every attempt met a conflict. */ readonly gaveUp: string) {
    super(message, hint);
  }
}

/**
 * Runs edit on the document and writes the result at the version it was read at, so a concurrent change is never
 * overwritten; on a conflict the document is read again and edit (which validates) runs again, up to
 * WRITE_ATTEMPTS times. Undefined when the edit changes nothing.
 */
export async function updateConfig(store: ConfigStore, edit: ConfigEdit): Promise<StoredConfig | undefined> {
  for (let attempt = 1; ; attempt++) {
    const current = await store.get();
    const next = edit(current.value);
    if (next === undefined) return undefined;
    try {
      return await store.put(next, current);
    } catch (err) {
      if (!(err instanceof ConfigConflict)) throw err;
      if (attempt >= WRITE_ATTEMPTS) throw new MeshError(`${err.gaveUp} (${WRITE_ATTEMPTS} attempts)`, 'nothing they wrote was overwritten; retry the command');
    }
  }
}
