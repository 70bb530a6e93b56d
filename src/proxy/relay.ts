// Moves one request and its response between the downstream exchange and an upstream request,
// streaming bodies both ways. It decides nothing: it reports how each attempt went to the layers
// above (exchange.ts Report) and answers with the failure's code when none of them took it over.
// The listeners are module-level functions that find their exchange on the emitter: a request
// allocates no closures here, and bodies are forwarded without pipe()'s listener set-up.
import type { Upstream, UpstreamResponse } from './wire/h1-client.js';
import type { Res } from './wire/h1-server.js';
import { Exchange, ProxyError, respondError, type Transport } from './exchange.js';
import { forwardHeaders } from './wire/h1-headers.js';
import { codeOf, MeshFault, neverSent } from './errors.js';

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

  constructor(readonly ex: Exchange, readonly up: Upstream, readonly t: Relaying) {}

  finish(): void {
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
  if (a.t.report.response(ex, status)) {
    upRes.resume();
    a.finish();
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
  if (ex.body !== null) up.end(ex.body);
  else if (ex.replayable) up.end();
  else ex.req.pipe(up);
}
