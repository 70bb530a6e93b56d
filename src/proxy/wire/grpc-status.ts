// gRPC's view of the proxy's own errors: a gRPC caller is answered "trailers-only" (HTTP 200, the
// status in grpc-status / grpc-message), as gRPC servers answer, so its library reports a gRPC
// status (PERMISSION_DENIED for a policy denial) instead of a bare HTTP error. Also gRPC's deadline
// header (grpc-timeout), which the timeout layer honours and passes on shrunk.

export const enum GrpcStatus { Ok = 0, Unknown = 2, DeadlineExceeded = 4, PermissionDenied = 7, ResourceExhausted = 8, Unimplemented = 12, Internal = 13, Unavailable = 14, Unauthenticated = 16 }

/** The gRPC status an HTTP status from the proxy means (gRPC's HTTP mapping, with 504 as the deadline it is here). */
export function grpcStatusOf(http: number): GrpcStatus {
  switch (http) {
    case 400: return GrpcStatus.Internal;
    case 401: return GrpcStatus.Unauthenticated;
    case 403: return GrpcStatus.PermissionDenied;
    case 404: return GrpcStatus.Unimplemented;
    case 408: case 504: return GrpcStatus.DeadlineExceeded;
    case 429: case 431: return GrpcStatus.ResourceExhausted;
    case 502: case 503: return GrpcStatus.Unavailable;
    default: return GrpcStatus.Unknown;
  }
}

/** The HTTP status a gRPC status means to a caller that is not gRPC (Envoy's grpcToHttpStatus). */
export function httpStatusOfGrpc(code: number): number {
  switch (code) {
    case 0: return 200;
    case 1: return 499;
    case 3: case 9: case 11: return 400;
    case 4: return 504;
    case 5: return 404;
    case 6: case 10: return 409;
    case 7: return 403;
    case 8: return 429;
    case 12: return 501;
    case 14: return 503;
    case 16: return 401;
    default: return 500;
  }
}

/** Milliseconds per grpc-timeout unit: Hours, Minutes, Seconds, milliseconds, microseconds, nanoseconds. */
const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/**
 * A grpc-timeout value (1 to 8 digits and a unit, gRPC's HTTP/2 spec) in ms, or -1 when it is not one: the proxy
 * then ignores it, as Envoy does, and the server decides.
 */
export function grpcTimeoutMs(v: string): number {
  const len = v.length;
  if (len < 2 || len > 9) return -1;
  const unit = TIMEOUT_UNIT_MS[v[len - 1]!];
  if (unit === undefined) return -1;
  let n = 0;
  for (let i = 0; i < len - 1; i++) {
    const d = v.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n * unit;
}

/** `ms` as a grpc-timeout value: whole milliseconds (at least 1) while they fit in 8 digits, else whole seconds. */
export function formatGrpcTimeout(ms: number): string {
  return ms < 1e8 ? `${Math.max(1, Math.floor(ms))}m` : `${Math.min(99_999_999, Math.floor(ms / 1000))}S`;
}

/** grpc-message is percent-encoded UTF-8 (outside printable ASCII, and '%' itself). */
export function grpcMessage(text: string): string {
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

export function isGrpc(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.startsWith('application/grpc');
}
