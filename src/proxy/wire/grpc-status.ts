// gRPC's view of the proxy's own errors: a gRPC caller is answered "trailers-only" (HTTP 200, the
// status in grpc-status / grpc-message), as gRPC servers answer, so its library reports a gRPC
// status (PERMISSION_DENIED for a policy denial) instead of a bare HTTP error.

export const enum GrpcStatus { Unknown = 2, DeadlineExceeded = 4, PermissionDenied = 7, ResourceExhausted = 8, Unimplemented = 12, Internal = 13, Unavailable = 14, Unauthenticated = 16 }

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

/** grpc-message is percent-encoded UTF-8 (outside printable ASCII, and '%' itself). */
export function grpcMessage(text: string): string {
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

export function isGrpc(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.startsWith('application/grpc');
}
