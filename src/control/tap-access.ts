// Who may tap: the admin credential taps anything; where the platform has its own users (Kubernetes), the caller's
// bearer token is checked by the platform (TokenReview) and each tap by its RBAC (SubjectAccessReview on a tap
// resource, as Linkerd's tap APIService does). A tap is polled and closed only by whoever opened it.
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
  /** Whether the user may tap the resource; why not, in words the user can act on. */
  authorize(user: TapCaller, target: TapTarget): Promise<{ allowed: boolean; reason?: string }>;
}
