// HTTP/2 framing for the app-facing ends (RFC 9113), our own as the HTTP/1.1 codec is: frames in and
// out, SETTINGS, PING, GOAWAY, both windows each way, and stream states. Strict: anything that cannot
// be read one way only ends the stream or the connection, and every count or buffer a peer can grow
// is bounded (streams, header blocks and their CONTINUATIONs, windows, resets, queued bytes). The
// frames of one event-loop turn go out in one write. Roles (server, client) add what differs.
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { encode, encodedBound, HpackDecoder, HpackError, Block } from './hpack.js';
import { MAX_HEAD } from './h1-parse.js';
import { CONN_WINDOW, MAX_WINDOW, TurnWriter, WINDOW } from './mux-frames.js';

export const enum F { Data = 0, Headers = 1, Priority = 2, Rst = 3, Settings = 4, Push = 5, Ping = 6, Goaway = 7, Window = 8, Cont = 9 }
/** HTTP/2 error codes (RFC 9113 7). */
export const enum E { NoError = 0, Protocol = 1, Internal = 2, Flow = 3, SettingsTimeout = 4, StreamClosed = 5, FrameSize = 6, Refused = 7, Cancel = 8, Compression = 9, Calm = 11 }
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;
const HDR = 9;
/** The largest frame payload either way (SETTINGS_MAX_FRAME_SIZE's default; we never raise it). */
export const MAX_FRAME = 16_384;
/** A header block with its CONTINUATIONs: beyond this (or this many frames) the peer is flooding. */
const MAX_BLOCK = MAX_HEAD + 16_384;
const MAX_CONTINUATIONS = 32;
/** HPACK table size this end allows the peer's encoder (the default). */
const TABLE = 4096;
/** Window credit is sent once this much was taken: a unary call's small messages never need a WINDOW_UPDATE. */
const CONN_CREDIT = CONN_WINDOW / 4;
const STREAM_CREDIT = WINDOW / 4;
/** Bytes a stream may have waiting on the peer's windows before its writer is told to wait. */
const STREAM_HIGH = 64 * 1024;
/** Streams the peer resets (or we refuse) within RESET_MS before the connection is ended: HTTP/2 "rapid reset". */
const MAX_RESETS = 200;
const RESET_MS = 1000;
/** Streams we reset whose late frames (sent before the peer saw our RST_STREAM) are still ignored, most recent first. */
const RESET_GRACE = 128;
/** Our SETTINGS not acknowledged by then ends the connection (RFC 9113 6.5.3); tunable like the head timeout. */
export const h2Timeouts = { settingsAckMs: 10_000 };

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const EMPTY = Buffer.alloc(0);

/** A connection error: GOAWAY with this code, then the connection ends. */
export class H2Error extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** One stream's state, shared by both roles; a role's stream class reacts through the hooks. */
export abstract class H2Stream extends EventEmitter {
  id = 0;
  sendWindow = 0;
  recvWindow = WINDOW;
  /** Credit taken by the consumer, not yet sent. */
  owed = 0;
  /** Bytes delivered while the consumer was paused: credited when it resumes. */
  held = 0;
  paused = false;
  localEnded = false;
  remoteEnded = false;
  closed = false;
  /** Body bytes the peer's Content-Length still allows (-1: none given). */
  remaining = -1;
  pend: Buffer[] | null = null;
  pendBytes = 0;
  pendEnd = false;
  pendTrailers: string[] | null = null;
  /** A write returned false: 'drain' is owed once the stream's queue empties. */
  wantDrain = false;

  constructor(readonly conn: H2Conn) {
    super();
  }

  /** A block of trailers (a flat list, no pseudo-headers) ends the peer's side. */
  abstract received(fields: string[]): void;
  abstract data(chunk: Buffer): void;
  /** The peer's side ended (END_STREAM). */
  abstract ended(): void;
  /** The stream is over: `code` -1 when both sides ended, else the reset's code (ours or the peer's); `err` when the connection failed. */
  abstract gone(code: number, err: Error | null): void;
  abstract drained(): void;

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.held > 0) {
      const n = this.held;
      this.held = 0;
      this.conn.credit(this, n);
    }
  }
}

/**
 * One HTTP/2 connection. The role's subclass reads header blocks (`block`) and decides what a stream is;
 * everything else (frames, flow control, settings, errors, the write batching) is here.
 */
export abstract class H2Conn {
  readonly streams = new Map<number, H2Stream>();
  /** Streams open, as SETTINGS_MAX_CONCURRENT_STREAMS counts them. */
  open = 0;
  peerMaxStreams = 0xffffffff;
  peerInitialWindow = 65_535;
  sendWindow = 65_535;
  recvWindow = 65_535;
  private owed = 0;
  /** The highest stream id the peer opened (server) or we opened (client). */
  lastId = 0;
  /** GOAWAY sent or received: no new streams. */
  goingAway = false;
  dead = false;
  private gotSettings = false;
  private prefaceLeft: number;
  private buf: Buffer | null = null;
  private readonly hpack = new HpackDecoder(TABLE, MAX_HEAD);
  private contId = 0;
  private contFlags = 0;
  private contParts: Buffer[] = [];
  private contBytes = 0;
  /** Frames of one turn go out in one write. */
  private readonly w: TurnWriter;
  private readonly blocked = new Set<H2Stream>();
  private readonly waiting = new Set<H2Stream>();
  private resets = 0;
  private resetsSince = 0;
  /** Fields of the block being read, reused: the role copies what it keeps. */
  protected fields: string[] = [];
  private sockErr: Error | null = null;
  /** Ids of streams we reset lately (insertion order, at most RESET_GRACE). */
  private readonly ourResets = new Set<number>();
  /** The last stream id our GOAWAY let through: the peer's frames on later ones are discarded. */
  private goawayLast = 0x7fffffff;
  private settingsTimer: NodeJS.Timeout | null;

  constructor(readonly sock: net.Socket, readonly server: boolean, maxStreams: number) {
    this.w = new TurnWriter(sock);
    this.prefaceLeft = server ? PREFACE.length : 0;
    if (!server) this.w.queue(PREFACE);
    // SETTINGS: our stream limit (server), no push (client), stream windows and header list as mesh/1's.
    const settings = [[3, maxStreams], [4, WINDOW], [6, MAX_HEAD]];
    if (!server) settings.push([2, 0]);
    const b = Buffer.allocUnsafe(HDR + settings.length * 6);
    header(b, settings.length * 6, F.Settings, 0, 0);
    let at = HDR;
    for (const [k, v] of settings) {
      b.writeUInt16BE(k!, at);
      b.writeUInt32BE(v!, at + 2);
      at += 6;
    }
    this.w.queue(b);
    this.settingsTimer = setTimeout(() => this.fail(E.SettingsTimeout, 'SETTINGS not acknowledged in time'), h2Timeouts.settingsAckMs);
    this.settingsTimer.unref();
    // The connection's window as mesh/1's (HTTP/2 starts it at 64 KiB: one round trip per 64 KiB of a big message).
    this.window(0, CONN_WINDOW - this.recvWindow);
    this.recvWindow = CONN_WINDOW;
    sock.on('data', (chunk: Buffer) => this.read(chunk));
    sock.on('drain', () => this.drainSock());
    sock.on('error', (err: Error) => {
      this.sockErr ??= err;
    });
    sock.on('close', () => this.destroy(this.sockErr ?? new H2Error(E.Cancel, 'connection closed')));
  }

  /** A header block, decoded: `verdict` says whether the fields can be used. */
  protected abstract block(id: number, flags: number, fields: string[], verdict: Block): void;
  /** The connection is over (after every stream was told). */
  protected abstract finished(err: Error | null): void;

  read(chunk: Buffer): void {
    if (this.dead) return;
    try {
      this.frames(chunk);
    } catch (err) {
      if (err instanceof H2Error) this.fail(err.code, err.message);
      else if (err instanceof HpackError) this.fail(E.Compression, err.message);
      else throw err;
    }
  }

  private frames(chunk: Buffer): void {
    let buf = chunk;
    if (this.buf !== null) {
      buf = Buffer.concat([this.buf, chunk]);
      this.buf = null;
    }
    let at = 0;
    if (this.prefaceLeft > 0) {
      const n = Math.min(this.prefaceLeft, buf.length);
      const from = PREFACE.length - this.prefaceLeft;
      if (buf.compare(PREFACE, from, from + n, 0, n) !== 0) throw new H2Error(E.Protocol, 'not the HTTP/2 connection preface');
      this.prefaceLeft -= n;
      at = n;
    }
    while (buf.length - at >= HDR) {
      const len = (buf[at]! << 16) | (buf[at + 1]! << 8) | buf[at + 2]!;
      if (len > MAX_FRAME) throw new H2Error(E.FrameSize, `frame of ${len} bytes past the ${MAX_FRAME} allowed`);
      if (buf.length - at - HDR < len) break;
      const type = buf[at + 3]!;
      const flags = buf[at + 4]!;
      const id = buf.readUInt32BE(at + 5) & 0x7fffffff;
      const payload = buf.subarray(at + HDR, at + HDR + len);
      at += HDR + len;
      this.frame(type, flags, id, payload);
      if (this.dead) return;
    }
    if (at < buf.length) this.buf = buf.subarray(at);
  }

  private frame(type: number, flags: number, id: number, p: Buffer): void {
    if (this.contId !== 0 && (type !== F.Cont || id !== this.contId)) throw new H2Error(E.Protocol, 'a header block interrupted before its end');
    if (!this.gotSettings && type !== F.Settings) throw new H2Error(E.Protocol, 'the first frame is not SETTINGS');
    switch (type) {
      case F.Data: return this.onData(flags, id, p);
      case F.Headers: return this.onHeaders(flags, id, p);
      case F.Cont: return this.onContinuation(flags, id, p);
      case F.Rst: return this.onRst(id, p);
      case F.Settings: return this.onSettings(flags, id, p);
      case F.Ping: return this.onPing(flags, id, p);
      case F.Goaway: return this.onGoaway(id, p);
      case F.Window: return this.onWindow(id, p);
      case F.Priority:
        if (id === 0) throw new H2Error(E.Protocol, 'PRIORITY on stream 0');
        if (p.length !== 5) this.rstId(id, E.FrameSize);
        return;
      case F.Push: throw new H2Error(E.Protocol, 'PUSH_PROMISE (push is off)');
      default: // Unknown frame types are ignored (RFC 9113 5.5).
    }
  }

  /** A stream id the peer may not have used yet: a frame on it is a protocol error. */
  protected idle(id: number): boolean {
    // Every stream is the client's (odd ids): push is off.
    return (id & 1) === 0 || id > this.lastId;
  }

  private onHeaders(flags: number, id: number, p: Buffer): void {
    if (id === 0) throw new H2Error(E.Protocol, 'HEADERS on stream 0');
    let start = 0;
    let end = p.length;
    if (flags & PADDED) {
      if (end < 1) throw new H2Error(E.FrameSize, 'padded HEADERS without its pad length');
      end -= p[0]!;
      start = 1;
    }
    if (flags & PRIORITY) start += 5;
    if (end < start) throw new H2Error(E.Protocol, 'HEADERS padding longer than the frame');
    const frag = p.subarray(start, end);
    if ((flags & END_HEADERS) === 0) {
      this.contId = id;
      this.contFlags = flags;
      this.contParts = [frag];
      this.contBytes = frag.length;
      return;
    }
    this.decode(id, flags, frag);
  }

  private onContinuation(flags: number, id: number, p: Buffer): void {
    if (this.contId === 0) throw new H2Error(E.Protocol, 'CONTINUATION without HEADERS');
    this.contBytes += p.length;
    this.contParts.push(p);
    if (this.contBytes > MAX_BLOCK || this.contParts.length > MAX_CONTINUATIONS) throw new H2Error(E.Calm, 'header block too large');
    if ((flags & END_HEADERS) === 0) return;
    const block = Buffer.concat(this.contParts, this.contBytes);
    this.contId = 0;
    this.contParts = [];
    this.decode(id, this.contFlags, block);
  }

  private decode(id: number, flags: number, block: Buffer): void {
    const fields = this.fields;
    fields.length = 0;
    const verdict = this.hpack.decode(block, fields);
    this.block(id, flags, fields, verdict);
  }

  /**
   * A frame on a stream that is closed (RFC 9113 5.1): a connection error, unless we reset the stream lately (the
   * peer may have sent it before it saw our RST_STREAM) or our GOAWAY discarded it.
   */
  protected closedStream(id: number, what: string): void {
    if (this.ourResets.has(id) || id > this.goawayLast) return;
    throw new H2Error(E.StreamClosed, `${what} on closed stream ${id}`);
  }

  /** Why the last refused block was refused. */
  protected get why(): string {
    return this.hpack.why;
  }

  private onData(flags: number, id: number, p: Buffer): void {
    if (id === 0) throw new H2Error(E.Protocol, 'DATA on stream 0');
    const len = p.length;
    this.recvWindow -= len;
    if (this.recvWindow < 0) throw new H2Error(E.Flow, 'DATA past the connection window');
    let start = 0;
    let end = len;
    if (flags & PADDED) {
      if (len < 1 || p[0]! >= len) throw new H2Error(E.Protocol, 'DATA padding longer than the frame');
      end -= p[0]!;
      start = 1;
    }
    const st = this.streams.get(id);
    if (st === undefined || st.remoteEnded) {
      if (st === undefined) {
        if (this.idle(id)) throw new H2Error(E.Protocol, 'DATA on a stream not opened');
        this.closedStream(id, 'DATA');
      }
      this.creditConn(len);
      if (st !== undefined) this.reset(st, E.StreamClosed);
      return;
    }
    st.recvWindow -= len;
    if (st.recvWindow < 0) {
      this.creditConn(len);
      return this.reset(st, E.Flow);
    }
    const n = end - start;
    // Padding is taken at once.
    if (n < len) this.credit(st, len - n);
    if (st.remaining >= 0) {
      st.remaining -= n;
      if (st.remaining < 0 || ((flags & END_STREAM) !== 0 && st.remaining > 0)) {
        this.creditConn(n);
        return this.reset(st, E.Protocol);
      }
    }
    if (n > 0) {
      st.data(n === len ? p : p.subarray(start, end));
      if (st.closed) return;
      // A consumer that paused on these bytes holds them; credit follows its resume.
      if (st.paused) st.held += n;
      else this.credit(st, n);
    }
    if (flags & END_STREAM) this.remoteEnd(st);
  }

  /** The peer's side of a stream ended. */
  protected remoteEnd(st: H2Stream): void {
    // A body shorter than its Content-Length is malformed (RFC 9113 8.1.1).
    if (st.remaining > 0) return this.reset(st, E.Protocol);
    st.remoteEnded = true;
    st.ended();
    if (st.closed) return;
    if (st.localEnded) this.close(st, -1, null);
    else if (!this.server) {
      // The app answered before the request was all sent: the rest is not wanted.
      this.reset(st, E.Cancel);
    }
  }

  /** `n` bytes of the stream were taken: credit them back (in batches). */
  credit(st: H2Stream, n: number): void {
    this.creditConn(n);
    if (st.remoteEnded || st.closed) return;
    st.owed += n;
    if (st.owed >= STREAM_CREDIT) {
      this.window(st.id, st.owed);
      st.recvWindow += st.owed;
      st.owed = 0;
    }
  }

  private creditConn(n: number): void {
    this.owed += n;
    if (this.owed >= CONN_CREDIT) {
      this.window(0, this.owed);
      this.recvWindow += this.owed;
      this.owed = 0;
    }
  }

  private onRst(id: number, p: Buffer): void {
    if (id === 0) throw new H2Error(E.Protocol, 'RST_STREAM on stream 0');
    if (p.length !== 4) throw new H2Error(E.FrameSize, 'RST_STREAM of the wrong length');
    const st = this.streams.get(id);
    if (st === undefined) {
      if (this.idle(id)) throw new H2Error(E.Protocol, 'RST_STREAM on a stream not opened');
      return;
    }
    if (this.server && !st.localEnded) this.counted();
    this.close(st, p.readUInt32BE(0), null);
  }

  /** A stream reset or refused before its answer: too many in a short time end the connection. */
  protected counted(): void {
    const now = Date.now();
    if (now - this.resetsSince > RESET_MS) {
      this.resetsSince = now;
      this.resets = 0;
    }
    if (++this.resets > MAX_RESETS) throw new H2Error(E.Calm, 'too many streams reset');
  }

  private onSettings(flags: number, id: number, p: Buffer): void {
    if (id !== 0) throw new H2Error(E.Protocol, 'SETTINGS on a stream');
    if (flags & ACK) {
      if (p.length !== 0) throw new H2Error(E.FrameSize, 'SETTINGS ACK with a payload');
      if (this.settingsTimer !== null) clearTimeout(this.settingsTimer);
      this.settingsTimer = null;
      return;
    }
    if (p.length % 6 !== 0) throw new H2Error(E.FrameSize, 'SETTINGS of the wrong length');
    for (let at = 0; at < p.length; at += 6) {
      const k = p.readUInt16BE(at);
      const v = p.readUInt32BE(at + 2);
      if (k === 2 && v > 1) throw new H2Error(E.Protocol, 'SETTINGS_ENABLE_PUSH past 1');
      else if (k === 3) this.peerMaxStreams = v;
      else if (k === 4) {
        if (v > MAX_WINDOW) throw new H2Error(E.Flow, 'SETTINGS_INITIAL_WINDOW_SIZE past 2^31-1');
        const delta = v - this.peerInitialWindow;
        this.peerInitialWindow = v;
        for (const st of this.streams.values()) {
          st.sendWindow += delta;
          if (st.sendWindow > MAX_WINDOW) throw new H2Error(E.Flow, 'a stream window past 2^31-1');
        }
        if (delta > 0) this.wake();
      } else if (k === 5 && (v < MAX_FRAME || v > 0xffffff)) throw new H2Error(E.Protocol, 'SETTINGS_MAX_FRAME_SIZE out of range');
    }
    this.gotSettings = true;
    this.control(F.Settings, ACK, 0, EMPTY);
    this.settled();
  }

  /** The peer's SETTINGS were applied (a client may open what waited for them). */
  protected settled(): void {}

  private onPing(flags: number, id: number, p: Buffer): void {
    if (id !== 0) throw new H2Error(E.Protocol, 'PING on a stream');
    if (p.length !== 8) throw new H2Error(E.FrameSize, 'PING of the wrong length');
    if ((flags & ACK) === 0) this.control(F.Ping, ACK, 0, p);
  }

  private onGoaway(id: number, p: Buffer): void {
    if (id !== 0) throw new H2Error(E.Protocol, 'GOAWAY on a stream');
    if (p.length < 8) throw new H2Error(E.FrameSize, 'GOAWAY too short');
    const last = p.readUInt32BE(0) & 0x7fffffff;
    this.goingAway = true;
    // Streams we opened past the peer's last were never processed: they fail as refused.
    if (!this.server) for (const st of [...this.streams.values()]) if (st.id > last) this.close(st, E.Refused, null);
    if (this.streams.size === 0) this.end();
  }

  private onWindow(id: number, p: Buffer): void {
    if (p.length !== 4) throw new H2Error(E.FrameSize, 'WINDOW_UPDATE of the wrong length');
    const n = p.readUInt32BE(0) & 0x7fffffff;
    if (id === 0) {
      if (n === 0) throw new H2Error(E.Protocol, 'WINDOW_UPDATE of 0');
      this.sendWindow += n;
      if (this.sendWindow > MAX_WINDOW) throw new H2Error(E.Flow, 'connection window past 2^31-1');
      this.wake();
      return;
    }
    const st = this.streams.get(id);
    if (st === undefined) {
      if (this.idle(id)) throw new H2Error(E.Protocol, 'WINDOW_UPDATE on a stream not opened');
      return;
    }
    if (n === 0) return this.reset(st, E.Protocol);
    st.sendWindow += n;
    if (st.sendWindow > MAX_WINDOW) return this.reset(st, E.Flow);
    if (st.pend !== null) this.pump(st);
  }

  /** Streams that waited on the connection window may send again. */
  private wake(): void {
    if (this.blocked.size === 0) return;
    const ready = [...this.blocked];
    this.blocked.clear();
    for (const st of ready) if (!st.closed) this.pump(st);
  }

  // ---- sending

  /** A stream opens: its windows start from the settings in force. */
  add(st: H2Stream, id: number): void {
    st.id = id;
    st.sendWindow = this.peerInitialWindow;
    this.streams.set(id, st);
    this.open++;
  }

  /** A HEADERS block (with CONTINUATIONs past one frame); END_STREAM with `end`. */
  headers(st: H2Stream, fields: readonly string[], end: boolean): void {
    const b = Buffer.allocUnsafe(HDR + encodedBound(fields));
    const len = encode(fields, b, HDR) - HDR;
    const flags = end ? END_STREAM : 0;
    if (len <= MAX_FRAME) {
      header(b, len, F.Headers, flags | END_HEADERS, st.id);
      this.w.queue(len + HDR === b.length ? b : b.subarray(0, len + HDR));
    } else {
      for (let at = 0; at < len; at += MAX_FRAME) {
        const n = Math.min(MAX_FRAME, len - at);
        const f = Buffer.allocUnsafe(HDR + n);
        header(f, n, at === 0 ? F.Headers : F.Cont, (at === 0 ? flags : 0) | (at + n === len ? END_HEADERS : 0), st.id);
        b.copy(f, HDR, HDR + at, HDR + at + n);
        this.w.queue(f);
      }
    }
    if (end) this.localEnd(st);
  }

  /** Body bytes (END_STREAM with `end`, or trailers after them): false when the writer should wait for 'drain'. */
  write(st: H2Stream, chunk: Buffer, end: boolean, trailers: readonly string[] | null): boolean {
    if (st.localEnded || st.closed || st.pendEnd) return false;
    if (end) {
      st.pendEnd = true;
      if (trailers !== null) st.pendTrailers = trailers as string[];
    }
    if (chunk.length > 0) {
      if (st.pend === null) st.pend = [chunk];
      else st.pend.push(chunk);
      st.pendBytes += chunk.length;
    }
    this.pump(st);
    if (st.pendBytes < STREAM_HIGH && !this.w.congested) return true;
    st.wantDrain = true;
    this.waiting.add(st);
    return false;
  }

  /** Sends what the windows allow of a stream's queue, then its end. */
  private pump(st: H2Stream): void {
    const pend = st.pend;
    if (pend !== null) {
      while (pend.length > 0) {
        const room = Math.min(st.sendWindow, this.sendWindow);
        if (room <= 0) {
          if (this.sendWindow <= 0) this.blocked.add(st);
          return;
        }
        const c = pend[0]!;
        const n = Math.min(room, c.length, MAX_FRAME);
        let piece = c;
        if (n === c.length) pend.shift();
        else {
          piece = c.subarray(0, n);
          pend[0] = c.subarray(n);
        }
        st.pendBytes -= n;
        st.sendWindow -= n;
        this.sendWindow -= n;
        const last = pend.length === 0 && st.pendEnd && st.pendTrailers === null;
        this.dataFrame(st.id, piece, last);
        if (last) {
          st.pend = null;
          return this.localEnd(st);
        }
      }
      st.pend = null;
      if (st.wantDrain && !this.w.congested) {
        st.wantDrain = false;
        this.waiting.delete(st);
        st.drained();
        if (st.closed) return;
      }
    }
    if (st.pendEnd && !st.localEnded) {
      const t = st.pendTrailers;
      st.pendTrailers = null;
      if (t !== null) this.headers(st, t, true);
      else {
        this.dataFrame(st.id, EMPTY, true);
        this.localEnd(st);
      }
    }
  }

  private dataFrame(id: number, payload: Buffer, end: boolean): void {
    const n = payload.length;
    // Small payloads go in the header's buffer: one piece for the batch to join.
    const b = Buffer.allocUnsafe(HDR + (n <= 1024 ? n : 0));
    header(b, n, F.Data, end ? END_STREAM : 0, id);
    if (n <= 1024) {
      payload.copy(b, HDR);
      this.w.queue(b);
    } else {
      this.w.queue(b);
      this.w.queue(payload);
    }
  }

  private localEnd(st: H2Stream): void {
    st.localEnded = true;
    if (st.remoteEnded) this.close(st, -1, null);
    // A server that answered a request whose body still comes asks the client to stop it (RFC 9113 8.1).
    else if (this.server) this.reset(st, E.NoError);
  }

  /** Resets a stream (RST_STREAM with `code`) and closes it. */
  reset(st: H2Stream, code: number): void {
    if (st.closed) return;
    this.rstId(st.id, code);
    this.close(st, code, null);
  }

  private rstId(id: number, code: number): void {
    const b = Buffer.allocUnsafe(HDR + 4);
    header(b, 4, F.Rst, 0, id);
    b.writeUInt32BE(code, HDR);
    this.w.queue(b);
    const r = this.ourResets;
    r.add(id);
    if (r.size > RESET_GRACE) r.delete(r.values().next().value!);
  }

  protected close(st: H2Stream, code: number, err: Error | null): void {
    if (st.closed) return;
    st.closed = true;
    this.streams.delete(st.id);
    this.open--;
    this.blocked.delete(st);
    this.waiting.delete(st);
    // What it held unread no longer counts against the connection.
    if (st.held > 0) this.creditConn(st.held);
    st.held = 0;
    st.pend = null;
    st.gone(code, err);
    this.streamClosed();
    if (this.goingAway && this.streams.size === 0) this.end();
  }

  /** A stream closed: a client may open one that waited. */
  protected streamClosed(): void {}

  private window(id: number, n: number): void {
    const b = Buffer.allocUnsafe(HDR + 4);
    header(b, 4, F.Window, 0, id);
    b.writeUInt32BE(n, HDR);
    this.w.queue(b);
  }

  /** A reply the peer asked for (PING, SETTINGS ACK): a peer that asks faster than it reads is cut off. */
  private control(type: number, flags: number, id: number, payload: Buffer): void {
    if (this.w.congested) throw new H2Error(E.Calm, 'control frames while not reading ours');
    const b = Buffer.allocUnsafe(HDR + payload.length);
    header(b, payload.length, type, flags, id);
    payload.copy(b, HDR);
    this.w.queue(b);
  }

  private drainSock(): void {
    if (this.sock.isPaused() && !this.dead) this.sock.resume();
    if (this.waiting.size === 0) return;
    const ready = [...this.waiting];
    this.waiting.clear();
    for (const st of ready) {
      if (st.closed) continue;
      // Still waiting on the peer's windows: pump tells it.
      if (st.pendBytes >= STREAM_HIGH) {
        this.waiting.add(st);
        continue;
      }
      st.wantDrain = false;
      st.drained();
    }
  }

  /** No new streams; the connection ends once the open ones are done. */
  goaway(code: number): void {
    if (this.goingAway && code === E.NoError) return;
    this.goingAway = true;
    const b = Buffer.allocUnsafe(HDR + 8);
    header(b, 8, F.Goaway, 0, 0);
    b.writeUInt32BE(this.server ? this.lastId : 0, HDR);
    b.writeUInt32BE(code, HDR + 4);
    if (this.server && this.lastId < this.goawayLast) this.goawayLast = this.lastId;
    this.w.queue(b);
    if (code === E.NoError && this.streams.size === 0) this.end();
  }

  /** A connection error: GOAWAY with its code, every stream fails, the connection ends. */
  fail(code: number, why: string): void {
    if (this.dead) return;
    this.goaway(code);
    this.destroy(new H2Error(code, why));
  }

  private end(): void {
    if (this.dead) return;
    this.w.flush();
    this.sock.end();
    this.destroy(null);
  }

  /** The socket is gone (or we end it): every open stream is told, once. */
  destroy(err: Error | null): void {
    if (this.dead) return;
    this.dead = true;
    if (this.settingsTimer !== null) clearTimeout(this.settingsTimer);
    this.settingsTimer = null;
    this.w.flush();
    if (err !== null) this.sock.end();
    for (const st of [...this.streams.values()]) this.close(st, E.Cancel, err ?? new H2Error(E.Cancel, 'connection closed'));
    this.finished(err);
    if (err !== null) setImmediate(() => this.sock.destroy());
  }
}

function header(b: Buffer, len: number, type: number, flags: number, id: number): void {
  b[0] = len >>> 16;
  b[1] = (len >>> 8) & 0xff;
  b[2] = len & 0xff;
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(id, 5);
}
