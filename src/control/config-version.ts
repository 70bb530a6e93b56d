// Optimistic concurrency for the config documents of the control plane's API (GET/PUT /v1/config/:kind): each
// document has a resourceVersion, and a PUT that names the one it was read at is refused with 409 when the
// document has changed since, as the Kubernetes API server does, so concurrent CLIs never overwrite each other.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { ConfigKind } from '../model/snapshot.js';

/**
 * The document's resourceVersion: a digest of its content. It survives control-plane restarts without being
 * stored, and it differs whenever the content does; a document changed and changed back has its old version
 * again, which is harmless: an edit made on that content still applies to exactly what is stored.
 */
export function configVersion(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value ?? null)).digest('base64url').slice(0, 16);
}

/**
 * The version a write was read at: `?resourceVersion=` (what the CLI sends), or an If-Match header (for curl and
 * other HTTP clients); undefined (or If-Match: *) for an unconditional write.
 */
export function expectedVersion(req: IncomingMessage, url: URL): string | undefined {
  const q = url.searchParams.get('resourceVersion');
  if (q !== null && q !== '') return q;
  const h = req.headers['if-match'];
  if (typeof h !== 'string' || h.trim() === '*' || h.trim() === '') return undefined;
  return h.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

/** The 409 answer, shaped like a Kubernetes Status (with `error`, as every error of this API has). */
export function conflictStatus(kind: ConfigKind, expected: string, current: string) {
  const message = `the ${kind} were changed since resourceVersion ${expected} (now ${current}): read them again and re-apply the change`;
  return {
    kind: 'Status',
    apiVersion: 'v1',
    status: 'Failure',
    reason: 'Conflict',
    code: 409,
    message,
    error: message,
    details: { kind, resourceVersion: current },
  };
}
