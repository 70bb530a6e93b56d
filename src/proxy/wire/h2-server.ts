// HTTP/2 cleartext from apps (prior knowledge), on the same port as HTTP/1.1: the first bytes
// decide. Each stream is handed to the per-request stack as the same Req/Res the HTTP/1.1 side
// makes, so routing, balancing, retries, metrics and policy run per stream (a gRPC client's one
// connection is balanced call by call). Our own codec (h2-conn.ts) does the framing and HPACK: the
// stream is the response, one object per call.
import type net from 'node:net';
import { createServer as netCreateServer } from 'node:net';
import { Head } from './h1-parse.js';
import { readTimeouts, Req, serveH1, trackConnections, type BodyFlow, type H1Handlers, type H1Server, type Res, type RequestHandler } from './h1-server.js';
import { codeOfStatus, ERROR_HEADER, errorHeader } from '../errors.js';
import { h2Fields, isConnectionHeader } from './h2-headers.js';
import { grpcMessage, grpcStatusOf, isGrpc } from './grpc-status.js';
import { Block } from './hpack.js';
import { E, H2Conn, H2Error, H2Stream, PREFACE } from './h2-conn.js';

export { PREFACE };
/** Streams one app connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
export const H2_MAX_STREAMS = 100;
const IDLE_MS = 60_000;
const END_STREAM = 0x1;

/** Whether the first bytes of a connection are (the start of) the HTTP/2 preface. */
export function isPreface(first: Buffer): boolean {
  const n = Math.min(first.length, PREFACE.length);
  return n > 0 && first.compare(PREFACE, 0, n, 0, n) === 0;
}

/** One stream: the body flow of its request and the response written back on it. */
class H2Exchange extends H2Stream implements Res, BodyFlow {
  statusCode = 200;
  headersSent = false;
  writableFinished = false;
  destroyed = false;
  shouldKeepAlive = true;
  bodyBytes = 0;
  req: Req | null = null;
  private headers: string[] | null = null;
  private noBody = false;
  /** A gRPC call: the proxy's own errors are answered as gRPC statuses. */
  grpc = false;
  head = false;
  /** The request's trailer fields, when its client sent some. */
  reqTrailers: string[] | null = null;

  get sock(): net.Socket {
    return this.conn.sock;
  }

  get socket(): net.Socket {
    return this.conn.sock;
  }

  pauseBody(): void {
    this.pause();
  }

  resumeBody(): void {
    this.resume();
  }

  writeHead(status: number, _reason: string | undefined, raw: string[]): this {
    this.statusCode = status;
    this.noBody = this.head || status === 204 || status === 304;
    if (this.grpc && status !== 200 && this.trailersOnly(status, raw)) return this;
    this.headers = h2Fields(raw, [':status', String(status)]);
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
    this.headers = [
      ':status', '200', 'content-type', 'application/grpc',
      'grpc-status', code ?? String(grpcStatusOf(status)), 'grpc-message', grpcMessage(reason), ERROR_HEADER, reason,
    ];
    return true;
  }

  private respond(end: boolean): void {
    this.headersSent = true;
    if (this.closed) return;
    this.conn.headers(this, this.headers!, end);
  }

  write(chunk: Buffer): boolean {
    if (this.destroyed || this.writableFinished) return false;
    if (!this.headersSent) this.respond(this.noBody);
    if (this.noBody || chunk.length === 0 || this.closed) return true;
    this.bodyBytes += chunk.length;
    return this.conn.write(this, chunk, false, null);
  }

  end(chunk?: Buffer, trailers?: string[] | null): void {
    if (this.destroyed || this.writableFinished) return;
    const body = this.noBody || chunk === undefined ? null : chunk;
    const t = trailers != null && trailers.length > 0 && !this.noBody ? h2Fields(trailers) : null;
    if (!this.headersSent) this.respond(this.noBody || ((body === null || body.length === 0) && t === null));
    if (!this.closed && !this.localEnded) {
      if (body !== null) this.bodyBytes += body.length;
      this.conn.write(this, body ?? EMPTY, true, t);
    }
    this.writableFinished = true;
    // The rest of a request body is not wanted; reading on lets the client's window move.
    this.req?.discard();
    this.emit('close');
  }

  destroy(): void {
    if (this.destroyed || this.writableFinished) return;
    this.conn.reset(this, E.Internal);
  }

  /** The request's trailer fields (they end its body): they go on with it (mesh/1 carries them). */
  received(trailers: string[]): void {
    this.reqTrailers = trailers.slice();
  }

  data(chunk: Buffer): void {
    this.req!.push(chunk);
  }

  ended(): void {
    const req = this.req!;
    if (!req.complete) req.finish(this.reqTrailers);
  }

  gone(_code: number, _err: Error | null): void {
    (this.conn as ServerConn).streamGone();
    if (this.writableFinished || this.destroyed) return;
    this.destroyed = true;
    const req = this.req;
    if (req !== null && !req.complete) req.aborted = true;
    this.emit('close');
  }

  drained(): void {
    this.emit('drain');
  }
}

const EMPTY = Buffer.alloc(0);

/** A request head from an h2 header block (pseudo-headers first), or why it is refused: a status, or -1 for a malformed block. */
function headOf(f: string[], endStream: boolean): Head | [number, string] {
  const h = new Head();
  let method: string | undefined;
  let path: string | undefined;
  let authority: string | undefined;
  let scheme = false;
  let size = 0;
  let cookies: string | undefined;
  let regular = false;
  for (let i = 0; i < f.length; i += 2) {
    const n = f[i]!;
    const v = f[i + 1]!;
    size += n.length + v.length + 32;
    if (n.charCodeAt(0) === 58 /* : */) {
      // Pseudo-headers come first, once each, and only the request's four (RFC 9113 8.3).
      if (regular) return [-1, 'pseudo-header after a header field'];
      if (n === ':method' && method === undefined) method = v;
      else if (n === ':path' && path === undefined) path = v;
      else if (n === ':authority' && authority === undefined) authority = v;
      else if (n === ':scheme' && !scheme) scheme = true;
      else return [-1, `pseudo-header ${n} not allowed here`];
      continue;
    }
    regular = true;
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
  if (method === 'CONNECT') return [405, 'CONNECT is not supported over HTTP/2'];
  if (method === undefined || path === undefined || !scheme || path.length === 0) return [-1, 'request without :method, :scheme or :path'];
  h.method = method;
  h.url = path;
  if (authority !== undefined) {
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

/** The server side of one app connection: each new stream a Req/Res for the stack. */
class ServerConn extends H2Conn {
  constructor(sock: net.Socket, private readonly request: RequestHandler) {
    super(sock, true, H2_MAX_STREAMS);
    sock.setTimeout(IDLE_MS);
    // A quiet connection closes, unless a stream is open: a gRPC stream may be quiet for long.
    sock.on('timeout', () => {
      if (this.streams.size === 0) this.goaway(E.NoError);
    });
  }

  protected block(id: number, flags: number, fields: string[], verdict: Block): void {
    const end = (flags & END_STREAM) !== 0;
    const st = this.streams.get(id) as H2Exchange | undefined;
    if (st !== undefined) {
      // A second block on an open stream is its trailers: they end it, and carry no pseudo-headers.
      if (st.remoteEnded) throw new H2Error(E.StreamClosed, `HEADERS on stream ${id} after its END_STREAM`);
      if (!end) throw new H2Error(E.Protocol, 'a header block in the middle of a request');
      if (verdict !== Block.Ok || hasPseudo(fields)) return this.reset(st, E.Protocol);
      st.received(fields);
      this.remoteEnd(st);
      return;
    }
    if ((id & 1) === 0) throw new H2Error(E.Protocol, 'HEADERS on a server stream id');
    // A stream already closed: fatal, unless we reset it and these are its frames under way.
    if (id <= this.lastId) return this.closedStream(id, 'HEADERS');
    this.lastId = id;
    if (this.goingAway) return;
    const x = new H2Exchange(this);
    if (this.open >= H2_MAX_STREAMS) {
      this.counted();
      this.add(x, id);
      return this.reset(x, E.Refused);
    }
    this.add(x, id);
    if (verdict === Block.TooLarge) return refuse(x, 431, 'request header list too large', end);
    if (verdict !== Block.Ok) return this.reset(x, E.Protocol);
    const h = headOf(fields, end);
    if (Array.isArray(h)) {
      if (h[0] < 0) return this.reset(x, E.Protocol);
      return refuse(x, h[0], h[1], end);
    }
    x.head = h.method === 'HEAD';
    x.grpc = isGrpc(contentType(h.raw));
    x.remaining = h.contentLength;
    const req = new Req(h, x);
    x.req = req;
    if (end) x.remoteEnded = true;
    this.request(req, x);
  }

  /** A stream ended: a quiet connection may close. */
  streamGone(): void {}

  protected finished(): void {}
}

function hasPseudo(f: string[]): boolean {
  for (let i = 0; i < f.length; i += 2) if (f[i]!.charCodeAt(0) === 58) return true;
  return false;
}

function contentType(raw: string[]): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i] === 'content-type') return raw[i + 1];
  return undefined;
}

/** The proxy's own answer to a stream it will not carry. */
function refuse(x: H2Exchange, status: number, why: string, ended: boolean): void {
  if (ended) x.remoteEnded = true;
  const body = Buffer.from(`${why}\n`);
  x.writeHead(status, undefined, ['content-type', 'text/plain; charset=utf-8', 'content-length', String(body.length), ERROR_HEADER, errorHeader(codeOfStatus(status), why)]);
  x.end(body);
}

/** The HTTP/2 side of a listener: a connection on each socket it is handed, a Req/Res per stream. */
export class H2Front {
  constructor(private readonly request: RequestHandler) {}

  accept(sock: net.Socket): void {
    // Window updates and small replies go out at once, not after a delayed ACK.
    sock.setNoDelay(true);
    new ServerConn(sock, this.request);
    sock.resume();
  }
}

/**
 * Reads a connection's first bytes until they tell the HTTP/2 preface from anything else ("P" may yet be a POST), then
 * hands them to `decide`, put back on the paused socket. Waits for 24 bytes at most and `ms` in all: a connection
 * silent or stalled that long is dropped.
 */
export function sniffPreface(sock: net.Socket, ms: number, decide: (first: Buffer, h2: boolean) => void): void {
  const silent = () => sock.destroy();
  const since = Date.now();
  let seen: Buffer | null = null;
  const read = (chunk: Buffer): void => {
    const first = seen === null ? chunk : Buffer.concat([seen, chunk]);
    const h2 = isPreface(first);
    if (h2 && first.length < PREFACE.length) {
      if (Date.now() - since > ms) return void sock.destroy();
      seen = first;
      return;
    }
    sock.removeListener('data', read);
    sock.setTimeout(0);
    sock.removeListener('timeout', silent);
    sock.removeListener('error', silent);
    sock.pause();
    sock.unshift(first);
    decide(first, h2);
  };
  sock.setTimeout(ms);
  sock.once('timeout', silent);
  sock.on('error', silent);
  sock.on('data', read);
  // A socket handed on paused with part of the preface (tcp-listeners' detect) reads on for the rest.
  sock.resume();
}

/**
 * One listener port for both: a connection that opens with the HTTP/2 preface goes to `h2`, any
 * other to HTTP/1.1. A connection silent for the head timeout is dropped, as a slow head is.
 */
export function serveHttp(sock: net.Socket, h1: H1Handlers, h2: H2Front): void {
  sniffPreface(sock, readTimeouts.headMs, (_first, isH2) => {
    if (isH2) return h2.accept(sock);
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
