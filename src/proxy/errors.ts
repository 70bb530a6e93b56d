// The proxy's failures by stable code, and the HTTP status each means (as undici's UND_ERR_* and
// linkerd2-proxy's error rescue do): error header, metrics, logs and tests tell errors apart by
// these codes, never by message text.
import { PeerIdentityError } from '../identity/spiffe.js';

/** The response header that says the proxy, not the app, answered, and why. */
export const ERROR_HEADER = 'mesh-proxy-error';

export const STATUS = {
  bad_request: 400,
  denied: 403,
  method_not_allowed: 405,
  request_timeout: 408,
  too_many_requests: 429,
  head_too_large: 431,
  unknown_service: 502,
  /** Nothing reached the peer: refused, unreachable, TLS handshake failed. Safe to send elsewhere. */
  connect: 502,
  /** The peer's certificate failed verification (expired, unknown CA, wrong SPIFFE id): a connect failure too. */
  peer_identity: 502,
  /** The peer broke mesh/1 (a frame past its window, an oversized frame). */
  protocol: 502,
  /** The upstream failed after the request went out (reset, closed, a bad response). */
  upstream: 502,
  /** The peer went silent (no answer to a ping). */
  peer_gone: 502,
  /** The peer refused a new stream before reading it (at its concurrency limit): safe to send elsewhere. */
  refused: 503,
  no_endpoints: 503,
  overloaded: 503,
  timeout: 504,
  /** A route's fault injection aborted the request (with the status the rule names). */
  fault: 500,
} as const;

export type ErrorCode = keyof typeof STATUS;

/** Every code, in a fixed order: metrics count errors in an array indexed by ERROR_INDEX. */
export const ERROR_CODES = Object.keys(STATUS) as ErrorCode[];
export const ERROR_INDEX = Object.fromEntries(ERROR_CODES.map((c, i) => [c, i])) as Record<ErrorCode, number>;

/** The error header's value: the stable code, then the reason as one line of printable ASCII. */
export function errorHeader(code: ErrorCode, reason: string): string {
  return `${code}: ${reason.replace(/[^\x20-\x7e]/g, ' ')}`;
}

/** The codes of the statuses a codec refuses a message with (a head too large, a slow client...). */
export function codeOfStatus(status: number): ErrorCode {
  switch (status) {
    case 405: return 'method_not_allowed';
    case 408: return 'request_timeout';
    case 431: return 'head_too_large';
    case 502: return 'upstream';
    default: return 'bad_request';
  }
}

/** A transport failure with its stable code; `errno` keeps the socket's code (ECONNRESET...) when there was one. */
export class MeshFault extends Error {
  readonly errno: string | undefined;

  constructor(readonly kind: ErrorCode, message: string, cause?: NodeJS.ErrnoException) {
    super(message);
    this.errno = cause?.code;
  }

  get status(): number {
    return STATUS[this.kind];
  }
}

// A name that does not resolve (egress) is a connection that never came up, too.
const CONNECT_ERRNOS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN']);

/** OpenSSL's names for a certificate that failed verification, as Node puts them in `err.code`. */
const VERIFY_CODES = new Set([
  'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_REVOKED', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'CERT_SIGNATURE_FAILURE',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'INVALID_CA', 'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE', 'HOSTNAME_MISMATCH', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * What a failure to open a connection to a peer was: its certificate failed verification, or
 * the connection did not come up at all. Both mean nothing was sent.
 */
export function connectFault(err: NodeJS.ErrnoException, peer: string): MeshFault {
  if (err instanceof MeshFault) return err;
  if (err instanceof PeerIdentityError || VERIFY_CODES.has(err.code ?? '')) {
    return new MeshFault('peer_identity', `${peer} failed verification: ${err.message}`, err);
  }
  return new MeshFault('connect', `cannot connect to ${peer}: ${err.code ?? err.message}`, err);
}

/** The stable code of any upstream failure. */
export function codeOf(err: NodeJS.ErrnoException): ErrorCode {
  if (err instanceof MeshFault) return err.kind;
  if (CONNECT_ERRNOS.has(err.code ?? '')) return 'connect';
  if (err instanceof PeerIdentityError || VERIFY_CODES.has(err.code ?? '')) return 'peer_identity';
  return 'upstream';
}

/** Nothing reached the peer, so the request may go to another endpoint whatever its method. */
export function neverSent(code: ErrorCode): boolean {
  return code === 'connect' || code === 'peer_identity' || code === 'refused';
}
