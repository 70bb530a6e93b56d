// The CLI's admin calls to the local control plane: bearer credential from the state dir, and
// failures turned into one-line errors with a hint.
import { ControlUnreachable } from '../../proxy/control-client.js';
import { MeshError } from '../../util/errors.js';
import { adminClient } from './control.js';
import type { StateDir } from './state.js';

export async function adminGet<T>(state: StateDir, path: string, timeoutMs = 15_000): Promise<T> {
  const client = adminClient(state);
  try {
    const { status, body } = await client.request<T & { error?: string; hint?: string }>('GET', path, undefined, { bearer: state.adminToken(), timeoutMs });
    if (status === 200) return body;
    const error = body?.error ?? `HTTP ${status}`;
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
