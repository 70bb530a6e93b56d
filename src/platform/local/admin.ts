// The CLI's admin calls to the local control plane: bearer credential from the state dir, and
// failures turned into one-line errors with a hint.
import { ControlUnreachable } from '../../api/client.js';
import { MeshError } from '../../util/errors.js';
import { adminClient } from './control.js';
import type { StateDir } from './state.js';

/** A config document as the control plane stores it. */
export interface StoredConfig {
  value: unknown;
  /** The snapshot version the control plane pushes with this config. */
  version: string;
  /** The document's own version, for a conditional write (absent from a control plane older than this CLI). */
  resourceVersion?: string;
}

/** Attempts of a read-modify-write before giving up on a document others keep changing (on both platforms). */
export const WRITE_ATTEMPTS = 3;

/** The control plane refused a write made at a version of the document that is no longer current (409). */
export class ConfigConflict extends MeshError {}

/**
 * A change to a config document, as a function of the document read: the next document (validated again on every
 * call), or undefined when nothing would change. Stores may call it more than once (after a write conflict).
 */
export type ConfigEdit = (current: unknown) => unknown | undefined;

export function adminGet<T>(state: StateDir, path: string, timeoutMs = 15_000): Promise<T> {
  return adminCall<T>(state, 'GET', path, undefined, { timeoutMs });
}

/** One admin call; `what` names the document a 422 refused ("the routes"). */
export async function adminCall<T>(state: StateDir, method: string, path: string, payload?: unknown, o: { timeoutMs?: number; what?: string } = {}): Promise<T> {
  const client = adminClient(state);
  try {
    const { status, body } = await client.request<T & { error?: string; hint?: string }>(method, path, payload, { bearer: state.adminToken(), timeoutMs: o.timeoutMs ?? 15_000 });
    if (status === 200) return body;
    const error = body?.error ?? `HTTP ${status}`;
    if (status === 409) throw new ConfigConflict(error, 'read it again and retry');
    if (status === 422) throw new MeshError(`the control plane refused ${o.what ?? 'the change'}: ${error}`, 'nothing was changed');
    if (status === 401) throw new MeshError(`the control plane refused the admin credential in ${state.display}`, "the state dir belongs to another install: 'mesh uninstall' and 'mesh install' again");
    if (status === 404 && error.startsWith('no such API')) {
      throw new MeshError(`the running control plane does not offer ${path.split('?')[0]}`, "it is older than this CLI: restart it with 'mesh uninstall' then 'mesh install'");
    }
    throw new MeshError(error, body?.hint);
  } catch (err) {
    if (err instanceof ControlUnreachable) {
      throw new MeshError(`no control plane is answering for ${state.display} (${err.message})`, "start it with 'mesh install'");
    }
    throw err;
  } finally {
    client.close();
  }
}

/**
 * Runs edit on a config document and writes the result at the resourceVersion it was read at, as the Kubernetes
 * stores do (src/platform/kubernetes/config-store.ts): a concurrent change is never overwritten; on a conflict
 * the document is read again and edit (which validates) runs again on it, up to WRITE_ATTEMPTS times.
 * Undefined when the edit changes nothing.
 */
export async function updateConfig(state: StateDir, kind: 'routes' | 'policies', edit: ConfigEdit): Promise<StoredConfig | undefined> {
  const path = `/v1/config/${kind}`;
  for (let attempt = 1; ; attempt++) {
    const current = await adminCall<StoredConfig>(state, 'GET', path);
    const next = edit(current.value);
    if (next === undefined) return undefined;
    // A control plane older than this CLI sends no resourceVersion; the write is then unconditional, as it was.
    const at = current.resourceVersion === undefined ? '' : `?resourceVersion=${encodeURIComponent(current.resourceVersion)}`;
    try {
      return await adminCall<StoredConfig>(state, 'PUT', path + at, next, { what: `the ${kind}` });
    } catch (err) {
      if (!(err instanceof ConfigConflict)) throw err;
      if (attempt >= WRITE_ATTEMPTS) {
        throw new MeshError(`the ${kind} in ${state.display} were changed by someone else while mesh wrote them (${WRITE_ATTEMPTS} attempts)`,
          'nothing they wrote was overwritten; retry the command');
      }
    }
  }
}
