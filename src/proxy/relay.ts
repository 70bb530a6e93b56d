// Moves one request and its response between the downstream exchange and an upstream request,
// streaming bodies both ways. It decides nothing: it reports how each attempt went to the layers
// above (exchange.ts Report) and answers with the failure's code when none of them took it over.
// The listeners are module-level functions that find their exchange on the emitter: a request
// allocates no closures here, and bodies are forwarded without pipe()'s listener set-up.
import type { Upstream, UpstreamResponse } from './wire/h1-client.js';
import type { Res } from './wire/h1-server.js';
import { Exchange, ProxyError, respondError, type Transport } from './exchange.js';
import { forwardHeaders, forwardTrailers } from './wire/h1-headers.js';
import { codeOf, MeshFault, neverSent } from './errors.js';
import { GrpcStatus, isGrpc } from './wire/grpc-status.js';
import type { RequestStats, RuleStats } from './metrics.js';
import { now as clockNow } from '../util/clock.js';

/** A transport that relays: it names the upstream in the reasons of the errors it answers. */
export interface Relaying extends Transport {
  describe(ex: Exchange): string;
}

const ATTEMPT = Symbol('mesh.attempt');

/** One try of an exchange upstream; hung on the emitters so listeners can find it. */
class Attempt {
  finished = false;
  upRes: UpstreamResponse | null = null;
  /** Body bytes still to come when the length is known (-1 when not), so the last chunk ends the response. */
  remaining = -1;
  ended = false;
  /** Paused until the client side drains: one 'drain' listener at a time, however many chunks were already on their way. */
  waiting = false;
  /** A gRPC response counted at its head whose grpc-status (in its trailers) is still to count. */
  grpc: RequestStats | null = null;
  /** The authorization rule that let the gRPC call in, which counts its outcome too (mesh authz). */
  grpcRule: RuleStats | null = null;
  status = 0;

  constructor(readonly ex: Exchange, readonly up: Upstream, readonly t: Relaying) {}

  /** Counts a gRPC response's outcome once: a stream cut before its trailers is UNKNOWN, as the client sees it. */
  grpcEnd(grpcStatus: number): void {
    const g = this.grpc;
    if (g !== null) {
      this.grpc = null;
      g.grpcEnd(this.status, grpcStatus);
      if (this.grpcRule !== null) {
        this.grpcRule.end(grpcStatus === GrpcStatus.Ok);
        this.grpcRule = null;
      }
    }
  }

  finish(): void {
    // Cut before its trailers: by the proxy's own deadline (which sent DEADLINE_EXCEEDED), or else UNKNOWN.
    this.grpcEnd(this.ex.error === 'timeout' ? GrpcStatus.DeadlineExceeded : GrpcStatus.Unknown);
    if (!this.finished) {
      this.finished = true;
      if (this.ex.upstream === this.up) this.ex.upstream = null;
      this.t.report.done(this.ex);
    }
  }
}

type Carrier = { [ATTEMPT]?: Attempt };

function onResponse(this: Upstream & Carrier, upRes: UpstreamResponse & Carrier): void {
  const a = this[ATTEMPT]!;
  const { ex } = a;
  const status = upRes.statusCode!;
  ex.freshConnection = !this.reusedSocket;
  a.remaining = scanHead(upRes.rawHeaders);
  // A trailers-only gRPC answer's status, which retries may act on before anything reaches the client.
  ex.grpcStatus = grpcHead >= 0 ? grpcHead : -1;
  if (a.t.report.response(ex, status)) {
    upRes.resume();
    a.finish();
    return;
  }
  const res = ex.res as Res & Carrier;
  // The response writer frames the body for this client: by its length when known, else chunked for HTTP/1.1,
  // close-delimited for 1.0, frames on mesh/1. One Content-Length at most, never the upstream's own framing headers.
  const headers = forwardHeaders(upRes.rawHeaders, false);
  if (grpcHead === NOT_GRPC) ex.observe(status);
  else {
    // gRPC: the outcome is its grpc-status, in the head of a trailers-only response or else in the trailers.
    const ms = clockNow() - ex.start;
    ex.stats.grpcHead(ms);
    a.status = status;
    a.grpc = ex.stats;
    if (ex.authzRule !== null) (a.grpcRule = ex.authzRule).head(ms);
    if (grpcHead !== GRPC_NO_STATUS) a.grpcEnd(grpcHead);
  }
  if (a.remaining >= 0) headers.push('content-length', String(a.remaining));
  res.writeHead(status, upRes.statusMessage, headers);
  ex.responding = true;
  a.upRes = upRes;
  upRes[ATTEMPT] = a;
  res[ATTEMPT] = a;
  upRes.on('data', onUpData);
  upRes.on('end', onUpEnd);
  upRes.on('aborted', onUpAborted);
}

function onUpData(this: UpstreamResponse & Carrier, chunk: Buffer): void {
  const a = this[ATTEMPT]!;
  const res = a.ex.res;
  if (a.remaining > 0) {
    a.remaining -= chunk.length;
    // The whole (rest of the) body: head, body and end go out in one write.
    if (a.remaining === 0) {
      a.ended = true;
      res.end(chunk);
      return;
    }
  }
  if (!res.write(chunk) && !a.waiting) {
    a.waiting = true;
    this.pause();
    res.once('drain', onResDrain);
  }
}

function onResDrain(this: Res & Carrier): void {
  const a = this[ATTEMPT];
  if (!a) return;
  a.waiting = false;
  a.upRes?.resume();
}

function onUpEnd(this: UpstreamResponse & Carrier): void {
  const a = this[ATTEMPT]!;
  const trailers = this.trailers;
  if (a.grpc !== null) a.grpcEnd(trailers ? grpcStatusIn(trailers) : GrpcStatus.Unknown);
  // Only the fields that may trail go on (RFC 9110 6.5.1), whichever protocol brought them.
  if (!a.ended) a.ex.res.end(undefined, trailers ? forwardTrailers(trailers) : null);
  a.finish();
}

function onUpAborted(this: UpstreamResponse & Carrier): void {
  const a = this[ATTEMPT]!;
  a.finish();
  // A response a layer already ended (a deadline's DEADLINE_EXCEEDED) stays as it is.
  if (!a.ex.res.writableFinished) a.ex.res.destroy();
}

function onUpError(this: Upstream & Carrier, err: NodeJS.ErrnoException): void {
  const a = this[ATTEMPT]!;
  const { ex } = a;
  const { res } = ex;
  if (res.headersSent || res.destroyed) {
    a.finish();
    res.destroy();
    return;
  }
  const code = codeOf(err);
  const taken = a.t.report.failed(ex, err, code, this.reusedSocket);
  a.finish();
  if (taken) return;
  const reason = err instanceof MeshFault
    ? `${a.t.describe(ex)}: ${err.message}`
    : neverSent(code)
      ? `cannot connect to ${a.t.describe(ex)}: ${err.code ?? err.message}`
      : `${a.t.describe(ex)} failed: ${err.message}`;
  respondError(ex, new ProxyError(code, reason));
}

/** The client went away (or the response is complete): an unfinished upstream is cut. */
function onResClose(this: Res & Carrier): void {
  const a = this[ATTEMPT];
  if (!a) return;
  if (!this.writableFinished) a.up.destroy();
  a.finish();
}

const NOT_GRPC = -2;
const GRPC_NO_STATUS = -1;
/** What scanHead found of gRPC: NOT_GRPC, GRPC_NO_STATUS, or the grpc-status of a trailers-only response. */
let grpcHead = NOT_GRPC;

/**
 * The response body's length when its head gives one, and -1 when not (Transfer-Encoding overrides it). The same
 * pass tells a gRPC response (sets grpcHead), so HTTP/1.1 pays one more length compare per header.
 */
function scanHead(raw: string[]): number {
  let n = -1;
  let chunked = false;
  let grpc = false;
  let status = GRPC_NO_STATUS;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const len = name.length;
    if (len === 17 && name.toLowerCase() === 'transfer-encoding') chunked = true;
    else if (n < 0 && len === 14 && name.toLowerCase() === 'content-length') {
      const v = Number(raw[i + 1]);
      n = Number.isSafeInteger(v) && v >= 0 ? v : -1;
    } else if (len === 12 && name.toLowerCase() === 'content-type') grpc = isGrpc(raw[i + 1]);
    else if (len === 11 && name.toLowerCase() === 'grpc-status') status = grpcCode(raw[i + 1]!);
  }
  grpcHead = grpc ? status : NOT_GRPC;
  return chunked ? -1 : n;
}

/** The grpc-status in trailer fields; none is UNKNOWN (the client cannot tell how the call ended). */
function grpcStatusIn(raw: string[]): number {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 11 && name.toLowerCase() === 'grpc-status') return grpcCode(raw[i + 1]!);
  }
  return GrpcStatus.Unknown;
}

function grpcCode(v: string): number {
  const c = v.length === 0 ? -1 : Number(v);
  return Number.isInteger(c) && c >= 0 && c <= 16 ? c : GrpcStatus.Unknown;
}

export function relay(ex: Exchange, up: Upstream, t: Relaying): void {
  ex.upstream = up;
  const a = new Attempt(ex, up, t);
  (up as Upstream & Carrier)[ATTEMPT] = a;
  const res = ex.res as Res & Carrier;
  // One close listener per response, however many attempts: it follows the current one.
  if (res[ATTEMPT] === undefined) res.on('close', onResClose);
  res[ATTEMPT] = a;
  up.on('response', onResponse);
  up.on('error', onUpError);
  if (ex.body !== null) up.end(ex.body, ex.req.trailers);
  else if (ex.replayable) up.end();
  else if (ex.kept !== null) ex.kept.pipe(ex.req, up);
  else ex.req.pipe(up);
}
