// mesh/1: how sidecars talk to each other. One mutual-TLS connection per peer carries many
// exchanges as streams of frames; the frames of everything that happened in one turn of the event
// loop leave in one write (one TLS record, one syscall) instead of one write per request. Message
// heads are HTTP/1.1 text, parsed by the same strict parser as the app-facing sides; bodies are
// DATA frames under a per-stream window, so one slow reader never stalls the others.
// Negotiated by ALPN: clients that do not offer it (curl, raw TLS) get HTTP/1.1 on the same port.
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import tls from 'node:tls';
import { STATUS_CODES } from 'node:http';
import { Head, parseRequestHead, parseResponseHead, ParseError } from './h1-parse.js';
import { Req, type BodyFlow, type H1Handlers, type Res } from './h1-server.js';
import type { Upstream, UpstreamResponse } from './h1-client.js';
import type { TcpStats } from './metrics.js';

export const ALPN = 'mesh1';

export interface TlsOptions {
  servername: string;
  checkServerIdentity: (host: string, cert: tls.PeerCertificate) => Error | undefined;
  secureContext: tls.SecureContext;
}

const enum T { Headers = 1, Data = 2, Reset = 3, Window = 4, Ping = 5 }
const END = 1;
/** On a PING: this one answers another. */
const ACK = 1;
const HDR = 10;
/** Bytes a sender may have in flight per stream before the receiver's window update. */
const WINDOW = 256 * 1024;
const MAX_DATA = 64 * 1024;
const MAX_FRAME = 1 << 20;
const MAX_STREAMS = 4096;

/** Frames queued this turn, written together when the turn is over. */
class FrameWriter {
  private out: Buffer[] = [];
  private size = 0;
  private scheduled = false;

  constructor(readonly sock: net.Socket) {}

  frame(type: number, flags: number, id: number, payload: Buffer | null): void {
    const h = Buffer.allocUnsafe(HDR);
    h[0] = type;
    h[1] = flags;
    h.writeUInt32BE(id, 2);
    h.writeUInt32BE(payload?.length ?? 0, 6);
    this.out.push(h);
    this.size += HDR;
    if (payload !== null && payload.length > 0) {
      this.out.push(payload);
      this.size += payload.length;
    }
    this.schedule();
  }

  /** A HEADERS frame from head text: one buffer, no copy of the string. */
  head(flags: number, id: number, head: string): void {
    const len = Buffer.byteLength(head, 'latin1');
    const b = Buffer.allocUnsafe(HDR + len);
    b[0] = T.Headers;
    b[1] = flags;
    b.writeUInt32BE(id, 2);
    b.writeUInt32BE(len, 6);
    b.write(head, HDR, 'latin1');
    this.out.push(b);
    this.size += b.length;
    this.schedule();
  }

  window(id: number, n: number): void {
    const b = Buffer.allocUnsafe(HDR + 4);
    b[0] = T.Window;
    b[1] = 0;
    b.writeUInt32BE(id, 2);
    b.writeUInt32BE(4, 6);
    b.writeUInt32BE(n, HDR);
    this.out.push(b);
    this.size += b.length;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate runs after every ready socket of this poll has been read: that is the batch.
    setImmediate(flushWriter, this);
  }

  flush(): void {
    this.scheduled = false;
    const out = this.out;
    if (out.length === 0 || this.sock.destroyed) return;
    this.sock.write(out.length === 1 ? out[0]! : Buffer.concat(out, this.size));
    this.out = [];
    this.size = 0;
  }
}

function flushWriter(w: FrameWriter): void {
  w.flush();
}

export interface FrameSink {
  onFrame(type: number, flags: number, id: number, payload: Buffer): void;
}

/**
 * Splits a connection's bytes into frames. DATA payloads are handed on as they arrive, as views of
 * the read buffers (END only on the last piece): a large body is never gathered or copied here.
 */
export class FrameReader {
  private buf: Buffer | null = null;
  /** The DATA frame whose payload is still arriving. */
  private dataId = 0;
  private dataFlags = 0;
  private dataLeft = 0;

  constructor(private readonly sink: FrameSink) {}

  push(chunk: Buffer): void {
    let at = 0;
    if (this.dataLeft > 0) at = this.data(chunk, 0);
    let buf = chunk;
    if (this.buf !== null) {
      buf = Buffer.concat([this.buf, chunk.subarray(at)]);
      at = 0;
      this.buf = null;
    }
    while (buf.length - at >= HDR) {
      const type = buf[at]!;
      const len = buf.readUInt32BE(at + 6);
      if (len > MAX_FRAME) throw new ParseError(400, 'mesh/1 frame too large');
      if (type === T.Data && buf.length - at < HDR + len) {
        this.dataFlags = buf[at + 1]!;
        this.dataId = buf.readUInt32BE(at + 2);
        this.dataLeft = len;
        at = this.data(buf, at + HDR);
        continue;
      }
      if (buf.length - at < HDR + len) break;
      this.sink.onFrame(type, buf[at + 1]!, buf.readUInt32BE(at + 2), buf.subarray(at + HDR, at + HDR + len));
      at += HDR + len;
    }
    if (at < buf.length) this.buf = buf.subarray(at);
  }

  /** Hands on what is here of the current DATA frame's payload; returns where it stopped. */
  private data(buf: Buffer, at: number): number {
    const n = Math.min(this.dataLeft, buf.length - at);
    this.dataLeft -= n;
    const last = this.dataLeft === 0;
    if (n > 0 || last) this.sink.onFrame(T.Data, last ? this.dataFlags : this.dataFlags & ~END, this.dataId, buf.subarray(at, at + n));
    return at + n;
  }
}

function headText(first: string, raw: string[]): string {
  let head = first;
  for (let i = 0; i < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return head + '\r\n';
}

function resetError(reason: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(reason);
  e.code = 'ECONNRESET';
  return e;
}

/** Sending side of a stream: DATA frames within the peer's window, the rest held until it opens. */
class Sender {
  window = WINDOW;
  private held: Buffer[] | null = null;
  private endHeld = false;
  /** The source was told to wait (a write returned false) and gets a drain when the window opens. */
  private waiting = false;

  constructor(private readonly w: FrameWriter, private readonly id: number) {}

  /** Queues a chunk (and the end); false when the window is shut and the source should wait. */
  data(chunk: Buffer, end: boolean): boolean {
    if (chunk.length > 0) (this.held ??= []).push(chunk);
    if (end) this.endHeld = true;
    this.pump();
    const open = this.held === null && this.window > 0;
    if (!open) this.waiting = true;
    return open;
  }

  private pump(): void {
    const held = this.held;
    while (held !== null && held.length > 0 && this.window > 0) {
      const c = held[0]!;
      const n = Math.min(c.length, this.window, MAX_DATA);
      if (n === c.length) held.shift();
      else held[0] = c.subarray(n);
      this.window -= n;
      const last = this.endHeld && held.length === 0;
      this.w.frame(T.Data, last ? END : 0, this.id, n === c.length ? c : c.subarray(0, n));
      if (last) this.endHeld = false;
    }
    if (held !== null && held.length === 0) this.held = null;
    if (this.held === null && this.endHeld) {
      this.endHeld = false;
      this.w.frame(T.Data, END, this.id, null);
    }
  }

  /** Nothing held back: everything (and the end, if given) is in frames. */
  get idle(): boolean {
    return this.held === null && !this.endHeld;
  }

  /** The peer opened the window: send what waited; true when a waiting source may go on. */
  opened(n: number): boolean {
    this.window += n;
    this.pump();
    if (this.waiting && this.held === null && this.window > 0) {
      this.waiting = false;
      return true;
    }
    return false;
  }
}

/** Receiving side: credits the peer's window as the consumer takes the data, not before. */
class Receiver {
  private owed = 0;
  paused = false;

  constructor(private readonly w: FrameWriter, private readonly id: number) {}

  consumed(n: number): void {
    this.owed += n;
    if (!this.paused && this.owed >= WINDOW / 4) this.credit();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    if (this.owed > 0) this.credit();
  }

  private credit(): void {
    this.w.window(this.id, this.owed);
    this.owed = 0;
  }
}

// ---- client side (the outbound sidecar) ----

export class MuxResponse extends EventEmitter implements UpstreamResponse {
  constructor(readonly statusCode: number, readonly statusMessage: string, readonly rawHeaders: string[], private readonly rx: Receiver) {
    super();
  }

  pause(): void {
    this.rx.pause();
  }

  resume(): void {
    this.rx.resume();
  }
}

export class ClientStream extends EventEmitter implements Upstream {
  source: { resume(): void } | null = null;
  res: MuxResponse | null = null;
  done = false;
  private headSent = false;
  private sent = false;
  readonly tx: Sender;
  readonly rx: Receiver;
  /** Bytes the response's Content-Length still allows (-1: not given). */
  private remaining = -1;

  constructor(readonly session: MuxSession, readonly id: number, private readonly head: string, readonly reusedSocket: boolean, private readonly noBody: boolean) {
    super();
    this.tx = new Sender(session.w, id);
    this.rx = new Receiver(session.w, id);
  }

  write(chunk: Buffer): boolean {
    if (this.done || this.sent) return true;
    if (!this.headSent) {
      this.headSent = true;
      this.session.w.head(0, this.id, this.head);
    }
    return this.tx.data(chunk, false);
  }

  end(chunk?: Buffer): void {
    if (this.done || this.sent) return;
    this.sent = true;
    if (!this.headSent) {
      this.headSent = true;
      const empty = chunk === undefined || chunk.length === 0;
      this.session.w.head(empty ? END : 0, this.id, this.head);
      if (empty) return;
    }
    this.tx.data(chunk ?? EMPTY, true);
  }

  destroy(err?: Error): void {
    if (this.done) return;
    this.session.w.frame(T.Reset, 0, this.id, null);
    this.fail(err ?? resetError('request cancelled'));
  }

  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.session.streams.delete(this.id);
    if (this.res === null) this.emit('error', err);
    else this.res.emit('aborted');
  }

  onFrame(type: number, flags: number, payload: Buffer): void {
    if (this.done) return;
    if (type === T.Headers) {
      if (this.res !== null) return this.protocolError('a second response head');
      let h: Head;
      try {
        h = parseResponseHead(payload, headEndOf(payload));
      } catch (err) {
        return this.protocolError((err as Error).message);
      }
      if (h.status < 200) return;
      this.remaining = this.noBody || h.status === 204 || h.status === 304 ? 0 : h.contentLength;
      this.res = new MuxResponse(h.status, h.reason, h.raw, this.rx);
      this.emit('response', this.res);
      if (flags & END) this.finish();
    } else if (type === T.Data) {
      if (this.res === null) return this.protocolError('data before the response head');
      if (payload.length > 0) {
        if (this.remaining >= 0) {
          this.remaining -= payload.length;
          if (this.remaining < 0) return this.protocolError('more data than Content-Length');
        }
        this.res.emit('data', payload);
        this.rx.consumed(payload.length);
      }
      if (flags & END) this.finish();
    } else if (type === T.Window) {
      if (this.tx.opened(payload.readUInt32BE(0))) this.source?.resume();
    } else if (type === T.Reset) {
      this.fail(resetError('stream reset by the peer'));
    }
  }

  private finish(): void {
    if (this.remaining > 0) return this.protocolError('response shorter than its Content-Length');
    this.done = true;
    this.session.streams.delete(this.id);
    this.res!.emit('end');
    // A response that came before the request was all sent: tell the peer to stop reading.
    if (!this.sent) this.session.w.frame(T.Reset, 0, this.id, null);
  }

  private protocolError(why: string): void {
    this.session.w.frame(T.Reset, 0, this.id, null);
    this.fail(new Error(`bad response from the peer: ${why}`));
  }
}

const EMPTY = Buffer.alloc(0);

function headEndOf(payload: Buffer): number {
  // A head frame holds exactly one head: its text ends with CRLFCRLF.
  const n = payload.length;
  if (n < 4 || payload[n - 4] !== 13 || payload[n - 3] !== 10 || payload[n - 2] !== 13 || payload[n - 1] !== 10) {
    throw new ParseError(400, 'mesh/1 head frame does not end with CRLFCRLF');
  }
  return n - 4;
}

/** One mutual-TLS connection to a peer proxy and the streams on it. */
export class MuxSession implements FrameSink {
  readonly streams = new Map<number, ClientStream>();
  readonly w: FrameWriter;
  private readonly reader: FrameReader;
  private nextId = 1;
  connected = false;
  closed = false;
  /** Replaced (the client certificate rotated): takes no new streams, closes when its last one ends. */
  draining = false;
  idleSince = Date.now();
  /** Reads so far, and what the liveness check saw last: a count, so reading costs no clock call. */
  reads = 0;
  seenReads = 0;
  quietSince = Date.now();
  pingAt = 0;

  constructor(readonly sock: tls.TLSSocket, readonly key: string, readonly secureContext: tls.SecureContext, private readonly onClose: (s: MuxSession) => void) {
    this.w = new FrameWriter(sock);
    this.reader = new FrameReader(this);
    sock.setNoDelay(true);
    sock.on('secureConnect', () => {
      if (sock.alpnProtocol !== ALPN) {
        sock.destroy(new Error(`peer does not speak ${ALPN} (ALPN ${sock.alpnProtocol || 'none'})`));
        return;
      }
      this.connected = true;
    });
    sock.on('data', (chunk: Buffer) => {
      this.reads++;
      try {
        this.reader.push(chunk);
      } catch (err) {
        this.close(err as Error);
      }
    });
    sock.on('error', (err) => this.close(err));
    sock.on('close', () => this.close(resetError('socket hang up')));
  }

  /**
   * Streams wait on a peer that may be gone without a word (a node lost, a cable cut): when
   * nothing has come for a while, ask; no answer in time fails the streams, which may be retried.
   */
  checkLive(now: number, pingAfterMs: number, pingTimeoutMs: number): void {
    if (this.reads !== this.seenReads || this.streams.size === 0) {
      this.seenReads = this.reads;
      this.quietSince = now;
      this.pingAt = 0;
      return;
    }
    if (this.pingAt === 0) {
      if (now - this.quietSince >= pingAfterMs) {
        this.pingAt = now;
        this.w.frame(T.Ping, 0, 0, null);
      }
    } else if (now - this.pingAt >= pingTimeoutMs) {
      this.close(resetError(`peer stopped answering (no reply to a ping in ${pingTimeoutMs} ms)`));
    }
  }

  request(method: string, path: string, headers: string[]): ClientStream {
    const id = this.nextId;
    this.nextId += 2;
    const s = new ClientStream(this, id, headText(`${method} ${path} HTTP/1.1\r\n`, headers), this.connected, method === 'HEAD');
    this.streams.set(id, s);
    return s;
  }

  /** Out of stream ids: new requests go to a fresh connection, this one ends when idle. */
  get exhausted(): boolean {
    return this.nextId > 0x7ffffff0;
  }

  onFrame(type: number, flags: number, id: number, payload: Buffer): void {
    const s = this.streams.get(id);
    if (s === undefined) {
      if (type === T.Ping && (flags & ACK) === 0) this.w.frame(T.Ping, ACK, 0, payload.length > 0 ? Buffer.from(payload) : null);
      return;
    }
    s.onFrame(type, flags, payload);
    if (this.streams.size === 0) {
      this.idleSince = Date.now();
      if (this.draining) this.close(resetError('replaced'));
    }
  }

  close(err: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.destroy();
    this.onClose(this);
    for (const s of [...this.streams.values()]) s.fail(err);
    this.streams.clear();
  }
}

export interface SessionPoolOptions {
  /** Sessions with no streams close after this long. */
  idleMs: number;
  /** A session with streams that has read nothing this long is pinged (default 10 s)... */
  pingAfterMs?: number;
  /** ...and closed if no reply comes within this (default 5 s). */
  pingTimeoutMs?: number;
  tcp?: TcpStats;
}

/** One session per peer address, opened on first use. */
export class SessionPool {
  private readonly sessions = new Map<string, MuxSession>();
  private readonly draining = new Set<MuxSession>();
  private sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly o: SessionPoolOptions) {}

  request(host: string, port: number, t: TlsOptions, method: string, path: string, headers: string[], tcp?: TcpStats): ClientStream {
    const key = `${host}:${port}`;
    let s = this.sessions.get(key);
    // A rotated client certificate: new streams go to a session that presents the new one.
    if (s === undefined || s.closed || s.exhausted || s.secureContext !== t.secureContext) {
      const sock = tls.connect({ host, port, servername: t.servername, checkServerIdentity: t.checkServerIdentity, secureContext: t.secureContext, ALPNProtocols: [ALPN] });
      (tcp ?? this.o.tcp)?.track(sock);
      const old = s;
      s = new MuxSession(sock, key, t.secureContext, (gone) => {
        if (this.sessions.get(gone.key) === gone) this.sessions.delete(gone.key);
        this.draining.delete(gone);
      });
      this.sessions.set(key, s);
      if (old !== undefined && !old.closed) {
        old.draining = true;
        if (old.streams.size === 0) old.close(resetError('replaced'));
        else this.draining.add(old);
      }
      this.startSweeper();
    }
    return s.request(method, path, headers);
  }

  private startSweeper(): void {
    if (this.sweeper !== null) return;
    const pingAfter = this.o.pingAfterMs ?? 10_000;
    const pingTimeout = this.o.pingTimeoutMs ?? 5_000;
    this.sweeper = setInterval(() => {
      const now = Date.now();
      const cutoff = now - this.o.idleMs;
      for (const s of [...this.sessions.values(), ...this.draining]) s.checkLive(now, pingAfter, pingTimeout);
      for (const s of [...this.sessions.values()]) if (s.streams.size === 0 && s.idleSince < cutoff) s.close(resetError('idle'));
      // A draining session whose streams ended by a path that did not close it.
      for (const s of [...this.draining]) if (s.streams.size === 0) s.close(resetError('replaced'));
      if (this.sessions.size === 0 && this.draining.size === 0 && this.sweeper !== null) {
        clearInterval(this.sweeper);
        this.sweeper = null;
      }
    }, Math.min(1000, this.o.idleMs, pingAfter / 2, pingTimeout / 2));
    this.sweeper.unref();
  }

  destroy(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const s of [...this.sessions.values(), ...this.draining]) s.close(resetError('proxy shutting down'));
  }
}

// ---- server side (the inbound sidecar) ----

class ServerStream implements BodyFlow {
  req: Req | null = null;
  res: MuxRes | null = null;
  readonly tx: Sender;
  readonly rx: Receiver;
  /** Request body bytes its Content-Length still allows (-1: not given). */
  remaining = -1;
  requestDone = false;

  constructor(readonly conn: MuxServerConn, readonly id: number) {
    this.tx = new Sender(conn.w, id);
    this.rx = new Receiver(conn.w, id);
  }

  get sock(): net.Socket {
    return this.conn.sock;
  }

  pauseBody(): void {
    this.rx.pause();
  }

  resumeBody(): void {
    this.rx.resume();
  }
}

/** A response sent back as HEADERS and DATA frames on its stream. */
class MuxRes extends EventEmitter implements Res {
  statusCode = 200;
  headersSent = false;
  writableFinished = false;
  destroyed = false;
  shouldKeepAlive = true;
  bodyBytes = 0;
  private head = '';
  private noBody = false;

  constructor(private readonly st: ServerStream, private readonly method: string) {
    super();
  }

  get socket(): net.Socket {
    return this.st.conn.sock;
  }

  writeHead(status: number, reason: string | undefined, raw: string[]): this {
    this.statusCode = status;
    this.noBody = status < 200 || status === 204 || status === 304 || this.method === 'HEAD';
    this.head = headText(`HTTP/1.1 ${status} ${reason || STATUS_CODES[status] || ''}\r\n`, raw);
    return this;
  }

  write(chunk: Buffer): boolean {
    if (this.destroyed || this.writableFinished) return false;
    if (!this.headersSent) {
      this.headersSent = true;
      this.st.conn.w.head(0, this.st.id, this.head);
    }
    if (this.noBody || chunk.length === 0) return true;
    this.bodyBytes += chunk.length;
    return this.st.tx.data(chunk, false);
  }

  end(chunk?: Buffer): void {
    if (this.destroyed || this.writableFinished) return;
    const body = this.noBody || chunk === undefined ? EMPTY : chunk;
    this.bodyBytes += body.length;
    if (!this.headersSent) {
      this.headersSent = true;
      this.st.conn.w.head(body.length === 0 ? END : 0, this.st.id, this.head);
      if (body.length > 0) this.st.tx.data(body, true);
    } else this.st.tx.data(body, true);
    this.writableFinished = true;
    this.st.conn.responseDone(this.st);
    this.emit('close');
  }

  destroy(): void {
    if (this.destroyed || this.writableFinished) return;
    this.st.conn.w.frame(T.Reset, 0, this.st.id, null);
    this.st.conn.reset(this.st);
  }

  aborted(): void {
    if (this.destroyed || this.writableFinished) return;
    this.destroyed = true;
    this.emit('close');
  }
}

/** A peer proxy's connection to this inbound listener. */
export class MuxServerConn implements FrameSink {
  readonly w: FrameWriter;
  private readonly reader: FrameReader;
  private readonly streams = new Map<number, ServerStream>();
  private lastId = 0;

  constructor(readonly sock: net.Socket, private readonly h: H1Handlers) {
    this.w = new FrameWriter(sock);
    this.reader = new FrameReader(this);
    sock.setNoDelay(true);
    sock.setTimeout(60_000);
    sock.on('data', (chunk: Buffer) => {
      try {
        this.reader.push(chunk);
      } catch {
        sock.destroy();
      }
    });
    sock.on('timeout', () => {
      if (this.streams.size === 0) sock.destroy();
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      for (const st of [...this.streams.values()]) this.reset(st);
    });
  }

  onFrame(type: number, flags: number, id: number, payload: Buffer): void {
    if (type === T.Ping) {
      if ((flags & ACK) === 0) this.w.frame(T.Ping, ACK, 0, payload.length > 0 ? Buffer.from(payload) : null);
      return;
    }
    let st = this.streams.get(id);
    if (type === T.Headers && st === undefined) {
      // Ids only grow: an old id is a stream already over, whose late frames are dropped.
      if (id <= this.lastId || (id & 1) === 0) return;
      this.lastId = id;
      st = new ServerStream(this, id);
      if (this.streams.size >= MAX_STREAMS) {
        this.w.frame(T.Reset, 0, id, null);
        return;
      }
      this.streams.set(id, st);
      this.begin(st, flags, payload);
      return;
    }
    if (st === undefined) return;
    if (type === T.Data) {
      const req = st.req!;
      if (st.requestDone) return;
      if (payload.length > 0) {
        if (st.remaining >= 0) {
          st.remaining -= payload.length;
          // The app gets the body under the Content-Length it was told: more would be a second request.
          if (st.remaining < 0) return this.refuse(st, 'request body longer than its Content-Length');
        } else if (!req.chunked) return this.refuse(st, 'request body without Content-Length or Transfer-Encoding');
        req.push(payload);
        st.rx.consumed(payload.length);
      }
      if (flags & END) this.requestEnd(st);
    } else if (type === T.Window) {
      if (st.tx.opened(payload.readUInt32BE(0))) st.res?.emit('drain');
      this.maybeClose(st);
    } else if (type === T.Reset) {
      this.reset(st);
    }
  }

  private begin(st: ServerStream, flags: number, payload: Buffer): void {
    let h: Head;
    try {
      h = parseRequestHead(payload, headEndOf(payload));
    } catch (err) {
      const e = err instanceof ParseError ? err : new ParseError(400, (err as Error).message);
      const msg = `${e.message}\n`;
      this.w.head(0, st.id, headText(`HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? ''}\r\n`, ['content-type', 'text/plain', 'content-length', String(msg.length)]));
      this.w.frame(T.Data, END, st.id, Buffer.from(msg, 'latin1'));
      this.streams.delete(st.id);
      return;
    }
    const req = new Req(h, st);
    st.req = req;
    st.remaining = h.contentLength;
    st.res = new MuxRes(st, h.method);
    if (flags & END) this.requestEnd(st);
    this.h.request(req, st.res);
  }

  private requestEnd(st: ServerStream): void {
    if (st.remaining > 0) return this.refuse(st, 'request body shorter than its Content-Length');
    st.requestDone = true;
    st.req!.finish();
    this.maybeClose(st);
  }

  private refuse(st: ServerStream, why: string): void {
    this.w.frame(T.Reset, 0, st.id, Buffer.from(why, 'latin1'));
    this.reset(st);
  }

  responseDone(st: ServerStream): void {
    this.maybeClose(st);
  }

  /** A stream is over when its response is ended and sent (the window may hold its tail back). */
  private maybeClose(st: ServerStream): void {
    if (!st.res?.writableFinished || !st.tx.idle || this.streams.get(st.id) !== st) return;
    if (!st.requestDone) {
      // The rest of the request body is not wanted: the peer stops sending on the reset.
      st.req!.discard();
      this.w.frame(T.Reset, 0, st.id, null);
    }
    this.streams.delete(st.id);
  }

  reset(st: ServerStream): void {
    this.streams.delete(st.id);
    const req = st.req;
    if (req !== null && !req.complete) req.aborted = true;
    st.res?.aborted();
  }
}

export function serveMux(sock: net.Socket, h: H1Handlers): void {
  new MuxServerConn(sock, h);
}
