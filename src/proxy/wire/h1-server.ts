// The server side of the proxy's HTTP/1.1: one small state object per connection, a request and a
// response object per exchange, and bytes written in as few writes as the framing allows.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { STATUS_TEXT } from './status-text.js';
import { BodyDecoder, chunkFrame, Head, headEnd, lastChunk, MAX_HEAD, parseRequestHead, ParseError, withHead, type BodyTarget } from './h1-parse.js';
import { forwardTrailers, tunnels } from './h1-headers.js';
import { ERROR_HEADER, errorHeader } from '../errors.js';

/** Where a request body goes: an upstream request, or a buffer for retries. */
export interface BodySink {
  write(chunk: Buffer): boolean;
  /** `trailers`: the request's trailer fields, already filtered (h1-headers.ts forwardTrailers). */
  end(chunk?: Buffer, trailers?: string[] | null): void;
  /** Set by the source: resumed when the sink drains. */
  source?: { resume(): void } | null;
}

/** What a request's body flow needs from its connection (an HTTP/1.1 connection or a mux stream). */
export interface BodyFlow {
  readonly sock: net.Socket;
  pauseBody(): void;
  resumeBody(): void;
}

/** The response side of an exchange, whichever protocol carries it. */
export interface Res extends EventEmitter {
  statusCode: number;
  headersSent: boolean;
  writableFinished: boolean;
  destroyed: boolean;
  /** False closes an HTTP/1.1 connection after this response. */
  shouldKeepAlive: boolean;
  /** Body bytes sent so far (what access logs report). */
  bodyBytes: number;
  readonly socket: net.Socket;
  writeHead(status: number, reason: string | undefined, raw: string[]): this;
  /** False when the peer is not keeping up; 'drain' follows. */
  write(chunk: Buffer): boolean;
  /** `trailers` (a flat list) go where the protocol carries them (HTTP/2, mesh/1 with a peer that takes them). */
  end(chunk?: Buffer, trailers?: string[] | null): void;
  destroy(): void;
}

export type RequestHandler = (req: Req, res: Res) => void;
export type UpgradeHandler = (req: Req, socket: net.Socket, head: Buffer) => void;

export interface H1Handlers {
  request: RequestHandler;
  upgrade: UpgradeHandler;
}

const CONN = Symbol('mesh.h1');
type ConnSocket = net.Socket & { [CONN]?: ServerConn };

const IDLE_MS = 60_000;
const SMALL = 16 * 1024;

/**
 * A request head must be whole within `headMs` of its first byte; a body may go `bodyIdleMs`
 * without a byte. Past either the client gets 408, and its slot goes to someone else.
 * Set once per process: `mesh proxy` reads MESH_PROXY_HEAD_TIMEOUT_MS and MESH_PROXY_BODY_TIMEOUT_MS.
 */
export const readTimeouts = { headMs: 10_000, bodyIdleMs: 30_000 };

export class Req {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  /** HTTP/1.minor */
  readonly minor: number;
  /** The first Host header, and how many there were (two is an error the caller reports). */
  readonly host: string | undefined;
  readonly hosts: number;
  readonly contentLength: number;
  readonly chunked: boolean;
  /** Its client takes trailer fields in the response (TE: trailers; HTTP/2 always). */
  readonly teTrailers: boolean;
  /** All of the body has arrived (or there is none). */
  complete: boolean;
  /** The trailer fields that ended the body and go on with it (set when it completes); null: none. */
  trailers: string[] | null = null;
  aborted = false;
  private sink: BodySink | null = null;
  private queue: Buffer[] | null = null;

  constructor(h: Head, readonly flow: BodyFlow) {
    this.method = h.method;
    this.url = h.url;
    this.rawHeaders = h.raw;
    this.minor = h.minor;
    this.host = h.host;
    this.hosts = h.hosts;
    this.contentLength = h.contentLength;
    this.chunked = h.chunked;
    this.teTrailers = h.teTrailers;
    this.complete = !h.chunked && h.contentLength <= 0;
  }

  get socket(): net.Socket {
    return this.flow.sock;
  }

  /** Whether a body is (or was) on its way. */
  get hasBody(): boolean {
    return this.chunked || this.contentLength > 0;
  }

  /** A header's value (lower-case name), several joined by commas as RFC 9110 allows. */
  header(name: string): string | undefined {
    const raw = this.rawHeaders;
    let v: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!;
      if (n.length === name.length && n.toLowerCase() === name) v = v === undefined ? raw[i + 1]! : `${v}, ${raw[i + 1]!}`;
    }
    return v;
  }

  /** Sends the body (what has come and what will) to `sink`, pausing the client when it is full. */
  pipe(sink: BodySink): void {
    this.sink = sink;
    sink.source = this;
    const q = this.queue;
    this.queue = null;
    if (q !== null) for (const c of q) sink.write(c);
    if (this.complete) sink.end(undefined, this.trailers);
    else this.flow.resumeBody();
  }

  /** The sink drained: let the client send more. */
  resume(): void {
    if (!this.complete) this.flow.resumeBody();
  }

  push(chunk: Buffer): void {
    if (this.sink === null) {
      // Nobody reads yet (buffering or a fault delay): hold what came and stop the client.
      (this.queue ??= []).push(chunk);
      this.flow.pauseBody();
    } else if (!this.sink.write(chunk)) this.flow.pauseBody();
  }

  /** The body ended, with the trailer fields that came (only those that may go on are kept). */
  finish(trailers: string[] | null = null): void {
    this.complete = true;
    if (trailers !== null) this.trailers = forwardTrailers(trailers);
    this.sink?.end(undefined, this.trailers);
  }

  /** The rest of the body is not wanted (the response was an error): drop it. */
  discard(): void {
    if (this.sink === null) {
      this.queue = null;
      this.sink = DISCARD;
    }
  }
}

const DISCARD: BodySink = { write: () => true, end() {} };

const enum Framing { None, Length, Chunked, Close }

export class H1Res extends EventEmitter implements Res {
  statusCode = 200;
  headersSent = false;
  /** All of the response went to the socket. */
  writableFinished = false;
  destroyed = false;
  bodyBytes = 0;
  /** False closes the connection after this response. */
  shouldKeepAlive: boolean;
  private head = '';
  private framing = Framing.None;

  constructor(readonly req: Req, private readonly conn: ServerConn, keepAlive: boolean) {
    super();
    this.shouldKeepAlive = keepAlive;
  }

  get socket(): net.Socket {
    return this.conn.sock;
  }

  /** Sets status and headers; they go out with the first body bytes (or the end). */
  writeHead(status: number, reason: string | undefined, raw: string[]): this {
    this.statusCode = status;
    let head = `HTTP/1.1 ${status} ${reason || STATUS_TEXT[status] || ''}\r\n`;
    let length = false;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!;
      if (n.length === 14 && n.toLowerCase() === 'content-length') length = true;
      head += `${n}: ${raw[i + 1]}\r\n`;
    }
    if (status < 200 || status === 204 || status === 304 || this.req.method === 'HEAD') this.framing = Framing.None;
    else if (length) this.framing = Framing.Length;
    else if (this.req.minor === 1) {
      this.framing = Framing.Chunked;
      head += 'transfer-encoding: chunked\r\n';
    } else {
      this.framing = Framing.Close;
      this.shouldKeepAlive = false;
    }
    if (!this.shouldKeepAlive) head += 'connection: close\r\n';
    else if (this.req.minor === 0) head += 'connection: keep-alive\r\n';
    this.head = head + '\r\n';
    return this;
  }

  write(chunk: Buffer): boolean {
    if (this.destroyed || this.writableFinished) return false;
    const sock = this.conn.sock;
    if (this.framing === Framing.None) return true;
    this.bodyBytes += chunk.length;
    const data = this.framing === Framing.Chunked ? chunkFrame(chunk) : chunk;
    if (!this.headersSent) {
      this.headersSent = true;
      if (data.length < SMALL) return sock.write(withHead(this.head, data));
      sock.cork();
      sock.write(this.head, 'latin1');
      const ok = sock.write(data);
      sock.uncork();
      return ok;
    }
    return sock.write(data);
  }

  /** Trailers go out in a chunked response to a client that said it takes them (TE: trailers); else they are dropped. */
  end(chunk?: Buffer, trailers?: string[] | null): void {
    if (this.destroyed || this.writableFinished) return;
    const sock = this.conn.sock;
    const body = this.framing === Framing.None ? null : chunk ?? null;
    if (body !== null) this.bodyBytes += body.length;
    let out: Buffer | null;
    if (this.framing === Framing.Chunked) {
      const last = lastChunk(this.req.teTrailers ? trailers : null);
      out = body !== null && body.length > 0 ? Buffer.concat([chunkFrame(body), last]) : last;
    } else out = body;
    if (!this.headersSent) {
      this.headersSent = true;
      if (out === null || out.length < SMALL) sock.write(withHead(this.head, out));
      else {
        sock.cork();
        sock.write(this.head, 'latin1');
        sock.write(out);
        sock.uncork();
      }
    } else if (out !== null) sock.write(out);
    this.writableFinished = true;
    this.conn.responseDone(this);
    this.emit('close');
  }

  destroy(): void {
    if (this.destroyed) return;
    this.conn.sock.destroy();
  }

  /** The connection went away before the response was complete. */
  aborted(): void {
    if (this.writableFinished || this.destroyed) return;
    this.destroyed = true;
    this.emit('close');
  }
}

/** One client connection: parses requests one at a time (pipelined ones wait their turn). */
export class ServerConn implements BodyTarget, BodyFlow {
  private buf: Buffer | null = null;
  private req: Req | null = null;
  private res: H1Res | null = null;
  private readonly body = new BodyDecoder();
  /** The connection is no longer ours to parse (upgraded, or closing after its last response). */
  private upgraded = false;
  /** When the head now arriving began (0: none is), and whether the body read timeout is armed. */
  private headSince = 0;
  private bodyTimed = false;

  constructor(readonly sock: net.Socket, private readonly h: H1Handlers) {}

  onData(chunk: Buffer): void {
    this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    this.process();
  }

  private process(): void {
    try {
      while (this.buf !== null && !this.upgraded) {
        const buf = this.buf;
        if (this.req !== null && !this.req.complete) {
          const at = this.body.feed(buf, 0, this);
          this.buf = at < buf.length ? buf.subarray(at) : null;
          if (!this.req.complete && !this.bodyTimed) {
            // The body spans reads: from here on, silence means a slow client.
            this.bodyTimed = true;
            this.sock.setTimeout(readTimeouts.bodyIdleMs);
          }
          continue;
        }
        // A pipelined request waits until the previous response is out.
        if (this.res !== null) {
          this.sock.pause();
          return;
        }
        const end = headEnd(buf);
        if (end < 0) {
          if (buf.length > MAX_HEAD) throw new ParseError(431, 'request head too large');
          // Stray CRLFs between requests are allowed (RFC 9112 2.2).
          if (buf.length <= 2 && (buf[0] === 13 || buf[0] === 10)) {
            this.buf = null;
            return;
          }
          if (this.headSince === 0) {
            this.headSince = Date.now();
            this.sock.setTimeout(readTimeouts.headMs);
          } else if (Date.now() - this.headSince > readTimeouts.headMs) throw new ParseError(408, 'request head not received in time');
          return;
        }
        if (end > MAX_HEAD) throw new ParseError(431, 'request head too large');
        if (this.headSince !== 0) {
          this.headSince = 0;
          this.sock.setTimeout(IDLE_MS);
        }
        this.buf = end + 4 < buf.length ? buf.subarray(end + 4) : null;
        this.begin(parseRequestHead(buf, end));
      }
    } catch (err) {
      this.fail(err instanceof ParseError ? err : new ParseError(400, (err as Error).message));
    }
  }

  private begin(h: Head): void {
    if (h.method === 'CONNECT') throw new ParseError(405, 'CONNECT is not supported');
    const req = new Req(h, this);
    if (tunnels(h)) {
      // Whatever follows the head is the new protocol's: a body would be read as that by the app.
      if (req.hasBody) throw new ParseError(400, 'an upgrade request has no body');
      // From here on the connection is the upgrade handler's.
      this.upgraded = true;
      const rest = this.buf ?? Buffer.alloc(0);
      this.buf = null;
      this.sock.removeListener('data', onSockData);
      this.sock.setTimeout(0);
      this.sock.pause();
      this.h.upgrade(req, this.sock, rest);
      return;
    }
    const keepAlive = h.minor === 1 ? !h.connClose : h.connKeepAlive && !h.connClose;
    const res = new H1Res(req, this, keepAlive);
    this.req = req;
    this.res = res;
    this.body.start(h, false);
    if (h.expectContinue && h.minor === 1 && req.hasBody) this.sock.write('HTTP/1.1 100 Continue\r\n\r\n');
    this.h.request(req, res);
  }

  pauseBody(): void {
    this.sock.pause();
  }

  resumeBody(): void {
    this.sock.resume();
  }

  onBody(chunk: Buffer): void {
    this.req!.push(chunk);
  }

  onBodyEnd(): void {
    if (this.bodyTimed) {
      this.bodyTimed = false;
      this.sock.setTimeout(IDLE_MS);
    }
    this.req!.finish(this.body.trailers);
  }

  responseDone(res: H1Res): void {
    if (res !== this.res) return;
    this.res = null;
    const req = this.req!;
    if (!res.shouldKeepAlive) {
      // Nothing after this response is read: a request pipelined behind it is not answered.
      this.upgraded = true;
      this.buf = null;
      this.sock.removeListener('data', onSockData);
      this.sock.end();
      return;
    }
    if (!req.complete) req.discard();
    this.sock.resume();
    // Pipelined bytes already here: parse them after this call stack unwinds.
    if (this.buf !== null) process.nextTick(processLater, this);
  }

  processLater(): void {
    if (!this.sock.destroyed) this.process();
  }

  private fail(err: ParseError): void {
    const msg = `${err.message}\n`;
    const res = this.res;
    // Nothing after a malformed message is read, not even requests already here (a parse may be queued for them).
    this.upgraded = true;
    this.buf = null;
    // A request already answered (its body was still being read) gets no second response: the connection just ends.
    if (res === null && this.req !== null && !this.req.complete) {
      this.sock.removeListener('data', onSockData);
      this.sock.end();
      return;
    }
    if (res !== null && res.headersSent) {
      this.sock.destroy();
      return;
    }
    this.res = null;
    res?.aborted();
    this.sock.end(`HTTP/1.1 ${err.status} ${STATUS_TEXT[err.status] ?? ''}\r\ncontent-type: text/plain\r\ncontent-length: ${msg.length}\r\n${ERROR_HEADER}: ${errorHeader(err.code, err.message)}\r\nconnection: close\r\n\r\n${msg}`);
    this.sock.removeListener('data', onSockData);
  }

  closed(): void {
    const req = this.req;
    if (req !== null && !req.complete) req.aborted = true;
    this.res?.aborted();
    this.res = null;
  }

  drained(): void {
    this.res?.emit('drain');
  }

  timedOut(): void {
    // A body we stopped reading (the upstream is slow) is not the client's delay.
    const late = this.headSince !== 0 && this.res === null ? 'head' : this.bodyTimed && this.res !== null && !this.sock.isPaused() ? 'body' : null;
    if (late !== null) {
      this.headSince = 0;
      this.bodyTimed = false;
      // The next timeout, if the client does not close after the 408, cuts the connection.
      return this.fail(new ParseError(408, `request ${late} not received in time`));
    }
    // Idle keep-alive connections close; one with a response in flight waits for its upstream.
    if (this.res === null) this.sock.destroy();
  }
}

function processLater(c: ServerConn): void {
  c.processLater();
}

function onSockData(this: ConnSocket, chunk: Buffer): void {
  this[CONN]!.onData(chunk);
}
function onSockDrain(this: ConnSocket): void {
  this[CONN]!.drained();
}
function onSockClose(this: ConnSocket): void {
  this[CONN]!.closed();
}
function onSockTimeout(this: ConnSocket): void {
  this[CONN]!.timedOut();
}
function onSockError(this: ConnSocket): void {
  this.destroy();
}

/** Serves HTTP/1.1 on an accepted (or TLS-wrapped) connection. */
export function serveH1(sock: net.Socket, h: H1Handlers): void {
  const s = sock as ConnSocket;
  s[CONN] = new ServerConn(sock, h);
  sock.setNoDelay(true);
  sock.setTimeout(IDLE_MS);
  sock.on('data', onSockData);
  sock.on('drain', onSockDrain);
  sock.on('close', onSockClose);
  sock.on('timeout', onSockTimeout);
  sock.on('error', onSockError);
}

export interface H1Server extends net.Server {
  closeAllConnections(): void;
}

/** Keeps a server's open connections so shutdown can cut them. */
export function trackConnections<S extends net.Server>(server: S): S & H1Server {
  const open = new Set<net.Socket>();
  server.on('connection', (sock: net.Socket) => {
    open.add(sock);
    sock.once('close', () => open.delete(sock));
  });
  const s = server as S & H1Server;
  s.closeAllConnections = () => {
    for (const sock of open) sock.destroy();
  };
  return s;
}

/** A plain-TCP HTTP/1.1 server (the outbound and ingress listeners). */
export function createH1Server(h: H1Handlers, onConnection?: (sock: net.Socket) => void): H1Server {
  const server = net.createServer((sock) => {
    onConnection?.(sock);
    serveH1(sock, h);
  });
  return trackConnections(server);
}
