// HTTP/2 cleartext from apps (prior knowledge), on the same port as HTTP/1.1: the first bytes
// decide. Each stream is handed to the per-request stack as the same Req/Res the HTTP/1.1 side
// makes, so routing, balancing, retries, metrics and policy run per stream (a gRPC client's one
// connection is balanced call by call). Node's http2 does the framing, HPACK and flow control.
import http2 from 'node:http2';
import type net from 'node:net';
import { createServer as netCreateServer } from 'node:net';
import { EventEmitter } from 'node:events';
import { Head, MAX_HEAD } from './h1-parse.js';
import { readTimeouts, Req, serveH1, trackConnections, type BodyFlow, type H1Handlers, type H1Server, type Res, type RequestHandler } from './h1-server.js';
import { codeOfStatus, ERROR_HEADER, errorHeader } from '../errors.js';
import { flatHeaders, h2Headers, isConnectionHeader } from './h2-headers.js';
import { CONN_WINDOW, WINDOW } from './mux-frames.js';
import { grpcMessage, grpcStatusOf, isGrpc } from './grpc-status.js';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** Streams one app connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
export const H2_MAX_STREAMS = 100;
/** What one session may make Node hold (its own accounting of frames, headers and buffered data), in MB. */
export const H2_SESSION_MEMORY_MB = 4;
const IDLE_MS = 60_000;

/** Whether the first bytes of a connection are (the start of) the HTTP/2 preface. */
export function isPreface(first: Buffer): boolean {
  const n = Math.min(first.length, PREFACE.length);
  return n > 0 && first.compare(PREFACE, 0, n, 0, n) === 0;
}

const STREAM = Symbol('mesh.h2');
const OPEN = Symbol('mesh.h2.open');
type Carried = http2.ServerHttp2Stream & { [STREAM]?: H2Exchange };
type Session = http2.ServerHttp2Session & { [OPEN]?: number };

/** One stream: the body flow of its request and the response written back on it. */
class H2Exchange extends EventEmitter implements Res, BodyFlow {
  statusCode = 200;
  headersSent = false;
  writableFinished = false;
  destroyed = false;
  shouldKeepAlive = true;
  bodyBytes = 0;
  req: Req | null = null;
  /** Request body bytes its Content-Length still allows (-1: not given). */
  remaining = -1;
  private headers: http2.OutgoingHttpHeaders | null = null;
  private trailers: http2.OutgoingHttpHeaders | null = null;
  private noBody = false;
  /** A gRPC call: the proxy's own errors are answered as gRPC statuses. */
  grpc = false;
  /** The request's trailer fields, when its client sent some. */
  reqTrailers: string[] | null = null;

  constructor(readonly st: http2.ServerHttp2Stream, readonly session: Session, readonly sock: net.Socket, private readonly head: boolean) {
    super();
  }

  get socket(): net.Socket {
    return this.sock;
  }

  pauseBody(): void {
    this.st.pause();
  }

  resumeBody(): void {
    this.st.resume();
  }

  writeHead(status: number, _reason: string | undefined, raw: string[]): this {
    this.statusCode = status;
    this.noBody = this.head || status === 204 || status === 304;
    if (this.grpc && status !== 200 && this.trailersOnly(status, raw)) return this;
    const h = h2Headers(raw);
    h[':status'] = status;
    this.headers = h;
    return this;
  }

  /** The proxy's own error (its error header says so) to a gRPC caller: a trailers-only answer with its gRPC status. */
  private trailersOnly(status: number, raw: string[]): boolean {
    let reason: string | undefined;
    let code: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!.toLowerCase();
      if (n === ERROR_HEADER) reason = raw[i + 1];
      else if (n === 'grpc-status') code = raw[i + 1];
    }
    if (reason === undefined) return false;
    this.noBody = true;
    this.headers = {
      ':status': 200, 'content-type': 'application/grpc',
      'grpc-status': code ?? String(grpcStatusOf(status)), 'grpc-message': grpcMessage(reason), [ERROR_HEADER]: reason,
    };
    return true;
  }

  private respond(end: boolean): void {
    this.headersSent = true;
    if (this.st.destroyed) return;
    if (end) this.st.respond(this.headers!, { endStream: true });
    // The response may end with trailers (gRPC's status): Node asks for them once the body is out.
    else this.st.respond(this.headers!, { waitForTrailers: true });
  }

  write(chunk: Buffer): boolean {
    if (this.destroyed || this.writableFinished) return false;
    if (!this.headersSent) this.respond(this.noBody);
    if (this.noBody || chunk.length === 0) return true;
    this.bodyBytes += chunk.length;
    return this.st.write(chunk);
  }

  end(chunk?: Buffer, trailers?: string[] | null): void {
    if (this.destroyed || this.writableFinished) return;
    const body = this.noBody || chunk === undefined ? null : chunk;
    if (trailers != null && trailers.length > 0 && !this.noBody) this.trailers = h2Headers(trailers);
    if (!this.headersSent) this.respond(this.noBody || ((body === null || body.length === 0) && this.trailers === null));
    if (!this.st.destroyed && !this.st.writableEnded) {
      if (body !== null && body.length > 0) {
        this.bodyBytes += body.length;
        this.st.end(body);
      } else this.st.end();
    }
    this.writableFinished = true;
    // The rest of a request body is not wanted; reading on lets the client's window move.
    this.req?.discard();
    this.emit('close');
  }

  sendTrailers(): void {
    const t = this.trailers;
    this.trailers = null;
    // Without trailers Node ends the stream with an empty DATA frame.
    this.st.sendTrailers(t ?? {});
  }

  destroy(): void {
    if (this.destroyed || this.writableFinished) return;
    this.st.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    this.aborted();
  }

  aborted(): void {
    if (this.destroyed || this.writableFinished) return;
    this.destroyed = true;
    const req = this.req;
    if (req !== null && !req.complete) req.aborted = true;
    this.emit('close');
  }
}

function onData(this: Carried, chunk: Buffer): void {
  const x = this[STREAM]!;
  if (x.remaining >= 0) {
    x.remaining -= chunk.length;
    if (x.remaining < 0) return refuse(this, x, 'request body longer than its Content-Length');
  }
  x.req!.push(chunk);
}

function onEnd(this: Carried): void {
  const x = this[STREAM]!;
  if (x.remaining > 0) return refuse(this, x, 'request body shorter than its Content-Length');
  if (!x.req!.complete) x.req!.finish(x.reqTrailers);
}

function onReqTrailers(this: Carried, headers: http2.IncomingHttpHeaders): void {
  this[STREAM]!.reqTrailers = flatHeaders(headers);
}

function refuse(st: Carried, x: H2Exchange, _why: string): void {
  st.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
  x.aborted();
}

function onDrain(this: Carried): void {
  this[STREAM]!.emit('drain');
}

function onWantTrailers(this: Carried): void {
  this[STREAM]!.sendTrailers();
}

function onClose(this: Carried): void {
  const x = this[STREAM]!;
  x.session[OPEN]!--;
  x.aborted();
}

function ignore(): void {}

/** A request head from an h2 stream's header block, or why it is refused. */
function headOf(headers: http2.IncomingHttpHeaders, raw: string[], endStream: boolean): Head | [number, string] {
  const h = new Head();
  const method = headers[':method'];
  const path = headers[':path'];
  if (method === 'CONNECT') return [405, 'CONNECT is not supported over HTTP/2'];
  if (typeof method !== 'string' || typeof path !== 'string') return [400, 'request without :method or :path'];
  h.method = method;
  h.url = path;
  const authority = headers[':authority'];
  let size = 0;
  let cookies: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    const v = raw[i + 1]!;
    size += n.length + v.length + 32;
    if (n.charCodeAt(0) === 58 /* : */) continue;
    if (isConnectionHeader(n, v)) return [400, `connection-specific header ${n} in an HTTP/2 request`];
    if (n === 'te') h.teTrailers = true;
    if (n === 'host') {
      h.hosts++;
      h.host ??= v;
      continue;
    }
    // HTTP/1.1 allows one Cookie header: HTTP/2's crumbs are joined (RFC 9113 8.2.3).
    if (n === 'cookie') {
      cookies = cookies === undefined ? v : `${cookies}; ${v}`;
      continue;
    }
    if (n === 'content-length') {
      if (!/^[0-9]{1,15}$/.test(v) || h.contentLength >= 0) return [400, 'invalid Content-Length'];
      h.contentLength = Number(v);
    }
    h.raw.push(n, v);
  }
  if (size > MAX_HEAD) return [431, 'request header list too large'];
  if (typeof authority === 'string') {
    // A Host that disagrees with :authority would route one way and be read another (RFC 9113 8.3.1).
    if (h.host !== undefined && (h.hosts > 1 || h.host.toLowerCase() !== authority.toLowerCase())) return [400, 'Host header disagrees with :authority'];
    h.host = authority;
    h.hosts = 1;
  }
  if (h.host !== undefined) h.raw.push('host', h.host);
  if (cookies !== undefined) h.raw.push('cookie', cookies);
  if (endStream) {
    if (h.contentLength > 0) return [400, 'Content-Length with an empty body'];
  } else if (h.contentLength < 0) {
    // A body framed only by the end of the stream goes on as HTTP/1.1's chunked (on mesh/1: DATA frames).
    h.chunked = true;
  }
  return h;
}

function refuseStream(st: http2.ServerHttp2Stream, status: number, why: string): void {
  const body = Buffer.from(`${why}\n`);
  st.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8', 'content-length': body.length, [ERROR_HEADER]: errorHeader(codeOfStatus(status), why) });
  st.end(body);
}

/** The HTTP/2 side of a listener: sessions on the sockets it is handed, a Req/Res per stream. */
export class H2Front {
  readonly server: http2.Http2Server;

  constructor(private readonly request: RequestHandler) {
    this.server = http2.createServer({
      settings: { maxConcurrentStreams: H2_MAX_STREAMS, maxHeaderListSize: MAX_HEAD, enablePush: false, initialWindowSize: WINDOW },
      maxSessionMemory: H2_SESSION_MEMORY_MB,
      maxHeaderListPairs: 256,
      // Streams a client opens and resets at once (HTTP/2 "rapid reset") are counted against this.
      maxSessionRejectedStreams: 100,
    });
    this.server.on('stream', (st: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, raw: string[]) => this.stream(st, headers, flags, raw));
    this.server.on('session', (s: Session) => {
      s[OPEN] = 0;
      // The connection's window as mesh/1's (HTTP/2 starts it at 64 KiB: one round trip per 64 KiB on a big message).
      s.setLocalWindowSize(CONN_WINDOW);
      s.setTimeout(IDLE_MS);
      // A quiet session closes, unless a stream is open: a gRPC stream may be quiet for long.
      s.on('timeout', () => {
        if ((s[OPEN] ?? 0) === 0) s.close();
      });
      s.on('error', ignore);
    });
  }

  accept(sock: net.Socket): void {
    // Window updates and small replies go out at once, not after a delayed ACK.
    sock.setNoDelay(true);
    this.server.emit('connection', sock);
  }

  private stream(st: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, raw: string[]): void {
    st.on('error', ignore);
    const endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    const h = headOf(headers, raw, endStream);
    if (Array.isArray(h)) return refuseStream(st, h[0], h[1]);
    const session = st.session as Session;
    session[OPEN] = (session[OPEN] ?? 0) + 1;
    const sock = session.socket as unknown as net.Socket;
    const x = new H2Exchange(st, session, sock, h.method === 'HEAD');
    x.grpc = isGrpc(headers['content-type']);
    const req = new Req(h, x);
    x.req = req;
    x.remaining = h.contentLength;
    const c = st as Carried;
    c[STREAM] = x;
    c.on('close', onClose);
    c.on('drain', onDrain);
    c.on('wantTrailers', onWantTrailers);
    c.on('trailers', onReqTrailers);
    // Read even a request that is complete already: its stream's END may still be on its way.
    c.on('data', onData);
    c.on('end', onEnd);
    this.request(req, x);
  }
}

/**
 * One listener port for both: a connection that opens with the HTTP/2 preface goes to `h2`, any
 * other to HTTP/1.1. A connection silent for the head timeout is dropped, as a slow head is.
 */
export function serveHttp(sock: net.Socket, h1: H1Handlers, h2: H2Front): void {
  const silent = () => sock.destroy();
  sock.setTimeout(readTimeouts.headMs);
  sock.once('timeout', silent);
  sock.on('error', silent);
  sock.once('data', (first: Buffer) => {
    sock.setTimeout(0);
    sock.removeListener('timeout', silent);
    sock.removeListener('error', silent);
    sock.pause();
    sock.unshift(first);
    // http2 reads what is buffered on the socket itself (on the next tick): it must not flow meanwhile.
    if (isPreface(first)) return h2.accept(sock);
    serveH1(sock, h1);
    sock.resume();
  });
}

/** A plain-TCP listener serving HTTP/1.1 and HTTP/2 (prior knowledge) alike: the outbound and ingress listeners. */
export function createHttpServer(h: H1Handlers, onConnection?: (sock: net.Socket) => void): H1Server {
  const h2 = new H2Front(h.request);
  const server = netCreateServer((sock) => {
    onConnection?.(sock);
    serveHttp(sock, h, h2);
  });
  return trackConnections(server);
}
