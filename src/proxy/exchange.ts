// One request's passage through the proxy, and the layer shape every step of it takes.
import type { Req, Res } from './wire/h1-server.js';
import type { Endpoint, Target } from './balancer.js';
import type { RequestStats, RuleStats } from './metrics.js';
import type { CompiledRule, ServiceRouter } from './routing.js';
import { ERROR_HEADER, STATUS, errorHeader, type ErrorCode } from './errors.js';
import type { Upstream } from './wire/h1-client.js';
import type { KeptBody } from './layers/retry.js';
import { grpcMessage, grpcStatusOf, isGrpc } from './wire/grpc-status.js';
import { now as clockNow } from '../util/clock.js';

/**
 * A failure the proxy answers itself: its stable code (errors.ts) and the status it means, so the client, the error
 * header, metrics and logs agree. `status` differs from the code's only where a route sets it (an injected abort).
 */
export class ProxyError extends Error {
  /** `grpcStatus`: what a gRPC caller is told, where not the one `status` means (an injected gRPC abort). */
  constructor(readonly code: ErrorCode, readonly reason: string, readonly status: number = STATUS[code], readonly grpcStatus?: number) {
    super(reason);
  }
}

export class Exchange {
  /** Service authority without port, lower case: what routing looks up. */
  host = '';
  /** The request's authority as read (with its port), for where a name outside the mesh goes. */
  authority = '';
  /** origin-form request target sent upstream. */
  path = '';
  /** Headers to forward, as a flat [name, value, ...] list. */
  headers: string[] = [];
  router: ServiceRouter | null = null;
  /** The route rule that matched, if the service has rules. */
  rule: CompiledRule | null = null;
  target: Target | null = null;
  endpoint: Endpoint | null = null;
  /** A small request body kept in memory so the request can be retried. */
  body: Buffer | null = null;
  /** A gRPC call's body copied as it streams up, so a retry on its status can send it again (rules that retry on one). */
  kept: KeptBody | null = null;
  /** The current attempt upstream, while it runs (a layer above the transport may cut it). */
  upstream: Pick<Upstream, 'destroy'> | null = null;
  /** When the current attempt was sent upstream (time to first byte is measured from here). */
  sent = 0;
  /** The current attempt's timeout (rules with a timeout, calls with a grpc-timeout). */
  timer: NodeJS.Timeout | null = null;
  /** A gRPC call's deadline (clock.ts now() time) from its grpc-timeout; 0 not read yet, -1 none. */
  deadline = 0;
  /** An upstream response head was handed to `res` (it may not have gone out yet): the proxy can no longer answer in its place. */
  responding = false;
  /** The grpc-status in the current attempt's response head (a trailers-only answer); -1 none. */
  grpcStatus = -1;
  /** The current attempt opened a new connection, so its time includes the handshake. */
  freshConnection = false;
  /** Attempts sent (or about to be) by the retry layer; 0 where there is none. */
  attempts = 0;
  /** The retry layer sends the request again once the current attempt is over. */
  again = false;
  /** Whether the request can be sent again after a connect failure (no body was read). */
  replayable = true;
  /** The request asked to upgrade its connection (its Connection and Upgrade headers go on). */
  upgrade = false;
  /** Inbound: the app port this exchange goes to. */
  appPort = 0;
  /** Verified peer identity on inbound. */
  peer = '';
  /** Set when the proxy answered itself: what the metrics and the access log say went wrong. */
  error: ErrorCode | null = null;
  readonly start = clockNow();
  traceId = '';
  /** This proxy's span when tracing exports spans (see telemetry.ts). */
  span: object | null = null;
  /** Inbound: the authorization rule that let this exchange in, which counts its response too (mesh authz). */
  authzRule: RuleStats | null = null;

  /** Where this exchange is counted: the proxy's catch-all until routing knows better. */
  constructor(readonly req: Req, readonly res: Res, public stats: RequestStats) {}

  /** Records the response status and time to first byte, once per exchange. */
  observe(status: number): void {
    const ms = clockNow() - this.start;
    this.stats.observe(status, ms);
    if (this.authzRule !== null) this.authzRule.observe(status, ms);
  }
}

export type Handler<X = Exchange> = (ex: X) => void;

/**
 * How an attempt went, as the transport reports it to the layers above, the nearest first. Each layer passes a
 * report on (`above`) or acts on it; the stack's top does nothing. `X` is what passes through the stack: an
 * exchange (a request), or a connection (tcp.ts).
 */
export interface Report<X = Exchange> {
  /** Its response head came (a connection: the tunnel opened, 200): true drops it unseen (a layer sends again once it is done). */
  response(ex: X, status: number): boolean;
  /**
   * It failed before any response, with the stable code of the failure: true when a layer took the exchange over
   * (answered it, or sends it again once it is done); else the transport answers with the code's status.
   */
  failed(ex: X, err: NodeJS.ErrnoException, code: ErrorCode, reused: boolean): boolean;
  /** It is over upstream, however it ended: once per attempt, after response() or failed(). */
  done(ex: X): void;
}

/**
 * One per-request behaviour: it wraps the handler below it (requests go down). One that needs to know how attempts
 * went also has `report`, which wraps the report of the layers above it, and may send again through `next`.
 */
export interface Layer<X = Exchange> {
  (next: Handler<X>): Handler<X>;
  report?: (above: Report<X>, next: Handler<X>) => Report<X>;
}

/** The bottom of a stack: sends an attempt and tells `report` how it went (set when the stack is built). */
export interface Transport<X = Exchange> {
  send: Handler<X>;
  report: Report<X>;
}

/** The stack's top, and a transport's report until its stack is built: does nothing. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- it does nothing with what it is given, whatever passes
export const TOP: Report<any> = {
  response: () => false,
  failed: () => false,
  done() {},
};

/**
 * Builds the per-request stack once (at config time); requests only run it. Handlers are built from the bottom up,
 * reports from the top down, and the transport reports to the layer nearest it.
 */
export function stack<X = Exchange>(layers: Array<Layer<X>>, transport: Transport<X> | Handler<X>): Handler<X> {
  const send = typeof transport === 'function' ? transport : transport.send;
  const nexts: Array<Handler<X>> = new Array(layers.length);
  let next = send;
  for (let i = layers.length - 1; i >= 0; i--) {
    nexts[i] = next;
    next = layers[i]!(next);
  }
  let report: Report<X> = TOP;
  for (let i = 0; i < layers.length; i++) {
    const r = layers[i]!.report;
    if (r !== undefined) report = r(report, nexts[i]!);
  }
  if (typeof transport !== 'function') transport.report = report;
  return next;
}

export function respondError(ex: Exchange, err: ProxyError): void {
  const { res } = ex;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  ex.error = err.code;
  ex.stats.error(err.code);
  // Read on this error path only: a gRPC caller is told a gRPC status.
  if (isGrpc(ex.req.header('content-type'))) return respondGrpc(ex, err);
  ex.observe(err.status);
  // A reason can carry an upstream's words: one line of Latin-1 in the header, UTF-8 in the body.
  const body = Buffer.from(`${err.reason}\n`);
  res.writeHead(err.status, undefined, [
    'content-type', 'text/plain; charset=utf-8',
    'content-length', String(body.length),
    ERROR_HEADER, errorHeader(err.code, err.reason),
  ]);
  res.end(body);
}

/**
 * To a gRPC caller: its gRPC status in grpc-status and grpc-message, no body. The HTTP status stays, as mesh/1 carries
 * it between sidecars (the caller's sidecar balances and retries on it); the sidecar facing the app answers it
 * trailers-only (wire/h2-server.ts). Counted as a gRPC response: that status with the grpc_status it was sent with.
 */
function respondGrpc(ex: Exchange, err: ProxyError): void {
  const code = err.grpcStatus ?? grpcStatusOf(err.status);
  ex.stats.grpcHead(clockNow() - ex.start);
  ex.stats.grpcEnd(err.status, code);
  ex.res.writeHead(err.status, undefined, [
    'content-type', 'application/grpc',
    'content-length', '0',
    'grpc-status', String(code),
    'grpc-message', grpcMessage(err.reason),
    ERROR_HEADER, errorHeader(err.code, err.reason),
  ]);
  ex.res.end();
}
