// Moves one request and its response between the downstream exchange and an upstream request,
// streaming bodies both ways and mapping upstream failures to the status they mean.
// The listeners are module-level functions that find their exchange on the emitter: a request
// allocates no closures here, and bodies are forwarded without pipe()'s listener set-up.
import type { Upstream, UpstreamResponse } from './wire/h1-client.js';
import type { Res } from './wire/h1-server.js';
import { Exchange, ProxyError, respondError } from './exchange.js';
import { forwardHeaders } from './wire/h1-headers.js';
import { codeOf, MeshFault, neverSent, STATUS, type ErrorCode } from './errors.js';

/** What to do after an upstream attempt failed: try again, it was answered already, or 502. */
export type Outcome = 'retry' | 'handled' | 'fail';

export interface RelayHooks {
  /** Called once when an attempt is over upstream, however it ended. */
  done(ex: Exchange): void;
  /** Response headers arrived; true sends the request again (the response is dropped unseen). */
  response(ex: Exchange, status: number): boolean;
  /** A failure before any response, with its stable code (see errors.ts). */
  failed(ex: Exchange, err: NodeJS.ErrnoException, code: ErrorCode, reused: boolean): Outcome;
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

  constructor(readonly ex: Exchange, readonly up: Upstream, readonly hooks: RelayHooks) {}

  finish(): void {
    if (!this.finished) {
      this.finished = true;
      this.hooks.done(this.ex);
    }
  }
}

type Carrier = { [ATTEMPT]?: Attempt };

function onResponse(this: Upstream & Carrier, upRes: UpstreamResponse & Carrier): void {
  const a = this[ATTEMPT]!;
  const { ex } = a;
  const status = upRes.statusCode!;
  ex.freshConnection = !this.reusedSocket;
  if (a.hooks.response(ex, status)) {
    upRes.resume();
    a.finish();
    ex.rebalance!(ex);
    return;
  }
  ex.observe(status);
  const res = ex.res as Res & Carrier;
  // The response writer frames the body for this client: by its length when known, else chunked for HTTP/1.1,
  // close-delimited for 1.0, frames on mesh/1. One Content-Length at most, never the upstream's own framing headers.
  const headers = forwardHeaders(upRes.rawHeaders, false);
  a.remaining = contentLength(upRes.rawHeaders);
  if (a.remaining >= 0) headers.push('content-length', String(a.remaining));
  res.writeHead(status, upRes.statusMessage, headers);
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
  if (!res.write(chunk)) {
    this.pause();
    res.once('drain', onResDrain);
  }
}

function onResDrain(this: Res & Carrier): void {
  this[ATTEMPT]?.upRes?.resume();
}

function onUpEnd(this: UpstreamResponse & Carrier): void {
  const a = this[ATTEMPT]!;
  if (!a.ended) a.ex.res.end(undefined, this.trailers);
  a.finish();
}

function onUpAborted(this: UpstreamResponse & Carrier): void {
  const a = this[ATTEMPT]!;
  a.finish();
  a.ex.res.destroy();
}

function onUpError(this: Upstream & Carrier, err: NodeJS.ErrnoException): void {
  const a = this[ATTEMPT]!;
  const { ex } = a;
  const { res } = ex;
  a.finish();
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const code = codeOf(err);
  const outcome = a.hooks.failed(ex, err, code, this.reusedSocket);
  if (outcome === 'retry') return ex.rebalance!(ex);
  if (outcome === 'handled') return;
  const reason = err instanceof MeshFault
    ? `${a.hooks.describe(ex)}: ${err.message}`
    : neverSent(code)
      ? `cannot connect to ${a.hooks.describe(ex)}: ${err.code ?? err.message}`
      : `${a.hooks.describe(ex)} failed: ${err.message}`;
  respondError(ex, new ProxyError(STATUS[code], reason, code));
}

/** The client went away (or the response is complete): an unfinished upstream is cut. */
function onResClose(this: Res & Carrier): void {
  const a = this[ATTEMPT];
  if (!a) return;
  if (!this.writableFinished) a.up.destroy();
  a.finish();
}

/** The response body's length when its head gives one, and -1 when not (Transfer-Encoding overrides it). */
function contentLength(raw: string[]): number {
  let n = -1;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') return -1;
    if (n < 0 && name.length === 14 && name.toLowerCase() === 'content-length') {
      const v = Number(raw[i + 1]);
      n = Number.isSafeInteger(v) && v >= 0 ? v : -1;
    }
  }
  return n;
}

export function relay(ex: Exchange, up: Upstream, hooks: RelayHooks): void {
  const a = new Attempt(ex, up, hooks);
  (up as Upstream & Carrier)[ATTEMPT] = a;
  const res = ex.res as Res & Carrier;
  // One close listener per response, however many attempts: it follows the current one.
  if (res[ATTEMPT] === undefined) res.on('close', onResClose);
  res[ATTEMPT] = a;
  up.on('response', onResponse);
  up.on('error', onUpError);
  if (ex.body !== null) up.end(ex.body);
  else if (ex.replayable) up.end();
  else ex.req.pipe(up);
}
