// The CLI's admin calls to the local control plane: bearer credential from the state dir, and
// failures turned into one-line errors with a hint.
import { ControlUnreachable } from '../../api/client.js';
import { ConfigConflict } from '../../api/config-store.js';
import { MeshError } from '../../util/errors.js';
import { adminClient } from './control.js';
import type { StateDir } from './state.js';

export function adminGet<T>(state: StateDir, path: string, timeoutMs = 15_000): Promise<T> {
  return adminCall<T>(state, 'GET', path, undefined, { timeoutMs });
}

/** One admin call; `what` names the document a 422 refused ("the routes"), `conflict` what a 409 means. */
export async function adminCall<T>(state: StateDir, method: string, path: string, payload?: unknown, o: { timeoutMs?: number; what?: string; conflict?: string } = {}): Promise<T> {
  const client = adminClient(state);
  try {
    const { status, body } = await client.request<T & { error?: string; hint?: string }>(method, path, payload, { bearer: state.adminToken(), timeoutMs: o.timeoutMs ?? 15_000 });
    if (status === 200) return body;
    const error = body?.error ?? `HTTP ${status}`;
    if (status === 409) throw new ConfigConflict(error, 'read it again and retry', o.conflict ?? error);
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
