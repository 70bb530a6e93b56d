// The client side of the proxy's HTTP/1.1 (inbound sidecar to its app, egress, upgrades, the trace export,
// and over TLS the control API's client): pools of keep-alive connections per upstream address, one
// request at a time on each.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { BodyDecoder, chunkFrame, Head, headEnd, lastChunk, MAX_HEAD, parseResponseHead, ParseError, withHead, type BodyTarget } from './h1-parse.js';
import type { BodySink } from './h1-server.js';
import type { TcpStats } from '../metrics.js';
import { keep, READ_BUF } from './read-buffer.js';

export interface UpstreamRequest {
  host: string;
  port: number;
  method: string;
  path: string;
  /** Flat [name, value, ...]; Content-Length or Transfer-Encoding in it decide the body framing. */
  headers: string[];
  /** Where a new connection is counted. */
  tcp?: TcpStats;
  /** An upgrade request (upgradeRequest): a 101 hands the connection over. */
  upgrade?: boolean;
}

const CONN = Symbol('mesh.h1c');
type ConnSocket = net.Socket & { [CONN]?: ClientConn };

const SMALL = 16 * 1024;

function hangUp(): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error('socket hang up');
  e.code = 'ECONNRESET';
  return e;
}

/** A request on its way upstream: 'response' (an UpstreamResponse) or 'error', once. */
export interface Upstream extends EventEmitter, BodySink {
  /** Sent on a connection that had carried requests before (so a reset may mean it was stale). */
  readonly reusedSocket: boolean;
  end(chunk?: Buffer, trailers?: string[] | null): void;
  destroy(err?: Error): void;
}

/** An upstream's response: 'data', then 'end' or 'aborted'. */
export interface UpstreamResponse extends EventEmitter {
  readonly statusCode: number;
  readonly statusMessage: string;
  readonly rawHeaders: string[];
  /** Trailer fields, when the protocol carried some: set before 'end'. */
  readonly trailers?: string[] | null;
  pause(): void;
  resume(): void;
}

export class UpResponse extends EventEmitter implements UpstreamResponse {
  trailers: string[] | null = null;

  constructor(readonly statusCode: number, readonly statusMessage: string, readonly rawHeaders: string[], private readonly flow: { pause(): void; resume(): void }) {
    super();
  }

  pause(): void {
    this.flow.pause();
  }

  resume(): void {
    this.flow.resume();
  }
}

export class UpRequest extends EventEmitter implements Upstream {
  reusedSocket = false;
  conn: ClientConn | null = null;
  res: UpResponse | null = null;
  private head: string;
  private headSent = false;
  private readonly chunked: boolean;
  /** The request is all written. */
  sent = false;
  done = false;
  /** A source paused on our backpressure, resumed on drain. */
  source: { resume(): void } | null = null;

  constructor(readonly o: UpstreamRequest) {
    super();
    let head = `${o.method} ${o.path} HTTP/1.1\r\n`;
    let chunked = false;
    const h = o.headers;
    for (let i = 0; i < h.length; i += 2) {
      const n = h[i]!;
      if (n.length === 17 && n.toLowerCase() === 'transfer-encoding') chunked = true;
      head += `${n}: ${h[i + 1]}\r\n`;
    }
    this.head = head + '\r\n';
    this.chunked = chunked;
  }

  write(chunk: Buffer): boolean {
    const c = this.conn;
    if (c === null || this.done) return true;
    const data = this.chunked ? chunkFrame(chunk) : chunk;
    if (!this.headSent) {
      this.headSent = true;
      if (data.length < SMALL) return c.sock.write(withHead(this.head, data));
      c.sock.cork();
      c.sock.write(this.head, 'latin1');
      const ok = c.sock.write(data);
      c.sock.uncork();
      return ok;
    }
    return c.sock.write(data);
  }

  /** `trailers` end a chunked body (a length-delimited one has no place for them). */
  end(chunk?: Buffer, trailers?: string[] | null): void {
    const c = this.conn;
    if (c === null || this.done || this.sent) return;
    let out: Buffer | null = chunk && chunk.length > 0 ? (this.chunked ? chunkFrame(chunk) : chunk) : null;
    if (this.chunked) out = out === null ? lastChunk(trailers) : Buffer.concat([out, lastChunk(trailers)]);
    if (!this.headSent) {
      this.headSent = true;
      c.sock.write(withHead(this.head, out));
    } else if (out !== null) c.sock.write(out);
    this.sent = true;
    c.requestSent();
  }

  /** Gives up on the request: before a response that is an 'error', after it an 'aborted'. */
  destroy(err?: Error): void {
    if (this.done) return;
    const c = this.conn;
    if (c !== null) c.fail(err ?? hangUp());
  }
}

/** One upstream connection and the request on it, if any. */
export class ClientConn implements BodyTarget {
  req: UpRequest | null = null;
  private buf: Buffer | null = null;
  private readonly body = new BodyDecoder();
  private head: Head | null = null;
  private reusable = false;
  private resDone = false;
  idleSince = 0;

  constructor(readonly sock: net.Socket, readonly pool: Pool, readonly key: string) {}

  attach(req: UpRequest): void {
    this.req = req;
    req.conn = this;
    this.head = null;
    this.buf = null;
    this.resDone = false;
  }

  requestSent(): void {
    if (this.resDone) this.finish();
  }

  onData(chunk: Buffer): void {
    const req = this.req;
    if (req === null) {
      // Bytes from an idle upstream mean it is out of step: never reuse it.
      this.sock.destroy();
      return;
    }
    // A head split across reads is gathered (the first piece was kept as a copy).
    this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    try {
      while (this.buf !== null) {
        const buf: Buffer = this.buf;
        if (this.head !== null) {
          const at = this.body.feed(buf, 0, this);
          this.buf = at < buf.length ? buf.subarray(at) : null;
          if (this.req !== req) break;
          continue;
        }
        const end = headEnd(buf);
        if (end < 0) {
          if (buf.length > MAX_HEAD) throw new ParseError(502, 'response head too large');
          this.buf = keep(buf);
          return;
        }
        const h = parseResponseHead(buf, end);
        this.buf = end + 4 < buf.length ? buf.subarray(end + 4) : null;
        // Interim responses (100 Continue and the like) are not passed on. A 101 hands an upgrade request's connection
        // over; to any other request it leaves the connection in a state nothing here can read.
        if (h.status === 101) {
          if (req.o.upgrade !== true) throw new ParseError(502, 'the app switched protocols unasked');
          return this.switched(req, h);
        }
        if (h.status < 200) continue;
        this.head = h;
        this.reusable = h.minor === 1 ? !h.connClose : h.connKeepAlive && !h.connClose;
        const noBody = req.o.method === 'HEAD' || h.status === 204 || h.status === 304;
        this.body.start(h, noBody);
        if (this.body.untilClose) this.reusable = false;
        const res = new UpResponse(h.status, h.reason, h.raw, this.sock);
        req.res = res;
        req.emit('response', res);
        if (this.req !== req) break;
        if (this.body.done) this.onBodyEnd();
        if (this.req !== req) break;
      }
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    // More bytes than the response said: the connection cannot be trusted further.
    if (this.buf !== null && this.req !== req) {
      this.buf = null;
      this.sock.destroy();
    }
  }

  /**
   * A 101 to an upgrade request: the connection is the upgrade's ('upgrade': the head, the socket, the bytes past the
   * head). The socket stays flowing: whoever takes it listens for 'data' (or pipes it) before the event returns.
   */
  private switched(req: UpRequest, h: Head): void {
    const rest = this.buf;
    this.buf = null;
    this.req = null;
    req.conn = null;
    req.done = true;
    const sock = this.sock;
    sock.removeListener('data', onSockData);
    sock.removeListener('close', onSockClose);
    sock.removeListener('error', onSockError);
    sock.removeListener('drain', onSockDrain);
    this.pool.forget(this);
    if (req.listenerCount('upgrade') === 0) return void sock.destroy();
    req.emit('upgrade', { statusMessage: h.reason, rawHeaders: h.raw }, sock, rest);
  }

  onBody(chunk: Buffer): void {
    this.req!.res!.emit('data', keep(chunk));
  }

  onBodyEnd(): void {
    const req = this.req!;
    this.resDone = true;
    this.head = null;
    const res = req.res!;
    res.trailers = this.body.trailers;
    res.emit('end');
    if (this.req !== req) return;
    // A response that came before the request was all sent leaves the connection mid-message.
    if (!req.sent) this.reusable = false;
    this.finish();
  }

  private finish(): void {
    const req = this.req!;
    this.req = null;
    req.conn = null;
    req.done = true;
    if (this.reusable && !this.sock.destroyed) this.pool.release(this);
    else this.sock.destroy();
  }

  /** The connection failed or was cut: the request gets an 'error', or its response an 'aborted'. */
  fail(err: Error): void {
    const req = this.req;
    this.req = null;
    this.sock.destroy();
    if (req === null || req.done) return;
    req.done = true;
    req.conn = null;
    if (req.res === null) req.emit('error', err);
    else req.res.emit('aborted');
  }

  closed(): void {
    this.pool.forget(this);
    if (this.req === null) return;
    // A close-delimited body ends with the connection.
    if (this.head !== null && this.body.close(this)) return;
    this.fail(hangUp());
  }

  drained(): void {
    this.req?.source?.resume();
  }
}

function onSockRead(this: ConnSocket, n: number, buf: Uint8Array): boolean {
  this[CONN]!.onData((buf as Buffer).subarray(0, n));
  return true;
}
function onSockData(this: ConnSocket, chunk: Buffer): void {
  this[CONN]!.onData(chunk);
}
function onSockClose(this: ConnSocket): void {
  this[CONN]!.closed();
}
function onSockError(this: ConnSocket, err: Error): void {
  const c = this[CONN]!;
  if (c.req !== null) c.fail(err);
  else this.destroy();
}
function onSockDrain(this: ConnSocket): void {
  this[CONN]!.drained();
}

export interface PoolOptions {
  /** Idle connections close after this long. */
  idleMs: number;
  /** At most this many idle connections are kept per address (0: none, every connection serves one request). */
  maxIdle: number;
  /** Counted when a request names no stats of its own. */
  tcp?: TcpStats;
  /** Opens a connection, reading with `onread` (as tls.connect takes it); plain TCP when absent. */
  connect?: (o: UpstreamRequest, onread: net.OnReadOpts) => net.Socket;
}

const ON_READ: net.OnReadOpts = { buffer: READ_BUF, callback: onSockRead };

/** A new connection's socket wired to its ClientConn, which then carries `req`. */
function openConn(sock: net.Socket, pool: Pool, key: string, req: UpRequest, tcp: TcpStats | undefined): ClientConn {
  sock.setNoDelay(true);
  const conn = new ClientConn(sock, pool, key);
  (sock as ConnSocket)[CONN] = conn;
  sock.on('close', onSockClose);
  sock.on('error', onSockError);
  sock.on('drain', onSockDrain);
  tcp?.track(sock);
  conn.attach(req);
  return conn;
}

/** Keep-alive connections per upstream address, most recently used first. */
export class Pool {
  private readonly idle = new Map<string, ClientConn[]>();
  private readonly all = new Set<ClientConn>();
  private sweeper: NodeJS.Timeout | null = null;
  private maxIdle: number;

  constructor(private readonly o: PoolOptions) {
    this.maxIdle = o.maxIdle;
  }

  request(o: UpstreamRequest): UpRequest {
    const req = new UpRequest(o);
    const key = `${o.host}:${o.port}`;
    const list = this.idle.get(key);
    const c = list?.pop();
    if (c !== undefined) {
      req.reusedSocket = true;
      c.attach(req);
      return req;
    }
    const sock = this.o.connect === undefined ? net.connect({ port: o.port, host: o.host, onread: ON_READ }) : this.o.connect(o, ON_READ);
    this.all.add(openConn(sock, this, key, req, o.tcp ?? this.o.tcp));
    return req;
  }

  release(c: ClientConn): void {
    let list = this.idle.get(c.key);
    if (list === undefined) this.idle.set(c.key, (list = []));
    if (list.length >= this.maxIdle) {
      c.sock.destroy();
      return;
    }
    c.idleSince = Date.now();
    // A response paused for backpressure may have ended meanwhile: an idle socket must read, to see it close.
    c.sock.resume();
    list.push(c);
    if (this.sweeper === null) {
      this.sweeper = setInterval(() => this.sweep(), Math.min(1000, this.o.idleMs));
      this.sweeper.unref();
    }
  }

  forget(c: ClientConn): void {
    this.all.delete(c);
    const list = this.idle.get(c.key);
    if (list === undefined) return;
    const i = list.indexOf(c);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.idle.delete(c.key);
  }

  private sweep(): void {
    const cutoff = Date.now() - this.o.idleMs;
    for (const list of this.idle.values()) {
      // Oldest first: the list is used from its end.
      while (list.length > 0 && list[0]!.idleSince < cutoff) list.shift()!.sock.destroy();
    }
    if (this.idle.size === 0 && this.sweeper !== null) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  /** Keeps no connection for later: idle ones close now, busy ones after their request. */
  retire(): void {
    this.maxIdle = 0;
    const idle = [...this.idle.values()];
    this.idle.clear();
    for (const list of idle) for (const c of list) c.sock.destroy();
  }

  destroy(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const c of this.all) c.sock.destroy();
    this.all.clear();
    this.idle.clear();
  }
}

/** Where upgrade connections go back to when the answer was not a 101: nowhere, they close. */
const UNPOOLED = new Pool({ idleMs: 1_000, maxIdle: 0 });

/**
 * An upgrade request on a connection of its own, read with 'data' events (after a 101 it is piped): 'upgrade' (the
 * 101's head, the socket, the bytes read past the head), or an ordinary 'response' after which the connection
 * closes, or 'error'. It has no body (a request with one is never an upgrade, h1-headers.ts tunnels).
 */
export function upgradeRequest(o: UpstreamRequest): UpRequest {
  const req = new UpRequest({ ...o, upgrade: true });
  const sock = net.connect({ port: o.port, host: o.host });
  sock.on('data', onSockData);
  openConn(sock, UNPOOLED, `${o.host}:${o.port}`, req, o.tcp);
  return req;
}
