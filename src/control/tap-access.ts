// Who may tap: the admin credential taps anything; where the platform has its own users (Kubernetes), the caller's
// bearer token (TokenReview) or client certificate (the platform's client CA, never the mesh's anchors) names the
// user, and each tap is checked by its RBAC (SubjectAccessReview on a tap resource, as Linkerd's tap APIService does).
// A tap is polled and closed only by whoever opened it.
import type { X509Certificate } from 'node:crypto';
import type { TapTarget } from './tap.js';

/** A caller of the tap API: the admin, or a platform user. */
export interface TapCaller {
  name: string;
  admin: boolean;
  groups?: string[];
  uid?: string;
  extra?: Record<string, string[]>;
}

export const ADMIN_CALLER: TapCaller = { name: '(admin)', admin: true };

export interface TapAccess {
  /** The user a bearer token belongs to, or undefined when the platform does not accept it. */
  authenticate(bearer: string): Promise<TapCaller | undefined>;
  /**
   * The user a client certificate chain (leaf first, as the caller sent it) names, verified by the platform's own
   * client CA; why not in one line. Absent where the platform has no certificate users.
   */
  certificate?(chain: X509Certificate[]): TapCaller | { refused: string };
  /** Whether the user may tap the resource; why not, in words the user can act on. */
  authorize(user: TapCaller, target: TapTarget): Promise<{ allowed: boolean; reason?: string }>;
}
