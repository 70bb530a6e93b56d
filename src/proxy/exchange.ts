// One request's passage through the proxy, and the layer shape every step of it takes.
import type { Req, Res } from './wire/h1-server.js';
import { performance } from 'node:perf_hooks';
import type { Endpoint, Target } from './balancer.js';
import type { RequestStats } from './metrics.js';
import type { CompiledRule, ServiceRouter } from './routing.js';
import { ERROR_HEADER, type ErrorCode } from './errors.js';

/** A failure with the HTTP status it means, so client, metrics and logs agree; `code` is its stable name (errors.ts). */
export class ProxyError extends Error {
  constructor(readonly status: number, readonly reason: string, readonly code?: ErrorCode) {
    super(reason);
  }
}

export class Exchange {
  /** Service authority without port, lower case: what routing looks up. */
  host = '';
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
  /** When the current attempt was sent upstream (time to first byte is measured from here). */
  sent = 0;
  /** The current attempt's timeout (rules with a timeout only). */
  timer: NodeJS.Timeout | null = null;
  /** The current attempt opened a new connection, so its time includes the handshake. */
  freshConnection = false;
  attempts = 0;
  /** Whether the request can be sent again after a connect failure (no body was read). */
  replayable = true;
  /** Inbound: the app port this exchange goes to. */
  appPort = 0;
  /** Verified peer identity on inbound. */
  peer = '';
  /** Endpoint selection, for the transport to try another endpoint after a connect failure. */
  rebalance: Handler | null = null;
  readonly start = performance.now();
  traceId = '';
  /** This proxy's span when tracing exports spans (see telemetry.ts). */
  span: object | null = null;

  /** Where this exchange is counted: the proxy's catch-all until routing knows better. */
  constructor(readonly req: Req, readonly res: Res, public stats: RequestStats) {}

  /** Records the response status and time to first byte, once per exchange. */
  observe(status: number): void {
    this.stats.observe(status, performance.now() - this.start);
  }
}

export type Handler = (ex: Exchange) => void;
export type Layer = (next: Handler) => Handler;

/** Builds the per-request stack once (at config time); requests only run it. */
export function stack(layers: Layer[], terminal: Handler): Handler {
  return layers.reduceRight<Handler>((next, layer) => layer(next), terminal);
}

export function respondError(ex: Exchange, err: ProxyError): void {
  const { res } = ex;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  ex.observe(err.status);
  // A reason can carry an upstream's words: one line of Latin-1 in the header, UTF-8 in the body.
  const body = Buffer.from(`${err.reason}\n`);
  res.writeHead(err.status, undefined, [
    'content-type', 'text/plain; charset=utf-8',
    'content-length', String(body.length),
    ERROR_HEADER, err.reason.replace(/[^\x20-\x7e]/g, ' '),
  ]);
  res.end(body);
}
