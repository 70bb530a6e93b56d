// mesh/1 framing: how sidecars talk to each other. One mutual-TLS connection per peer carries many
// exchanges as streams of frames; the frames of everything that happened in one turn of the event
// loop leave in one write (one TLS record, one syscall) instead of one write per request. Message
// heads are HTTP/1.1 text, parsed by the same strict parser as the app-facing sides; bodies are
// DATA frames under a per-stream window, so one slow reader never stalls the others.
// Negotiated by ALPN: clients that do not offer it (curl, raw TLS) get HTTP/1.1 on the same port.
// Client side: mux-client.ts; server side: mux-server.ts; windows: mux-flow.ts.
import type net from 'node:net';
import { isIdentityHeader, MAX_HEAD, ParseError } from './h1-parse.js';

export const ALPN = 'mesh1';

export const enum T { Headers = 1, Data = 2, Reset = 3, Window = 4, Ping = 5, Settings = 6, Trailers = 7 }
/**
 * What this version can take, a bit each, in SETTINGS after the stream limit: a peer that did not
 * announce one (the previous version sends the stream limit only) is never sent it.
 * TRAILERS: a response may end with a Trailers frame (END set), fields as in a head without its start line.
 * UPGRADE: a request head may carry the UPGRADE flag (see mux-upgrade in mux-client.ts and mux-server.ts).
 */
export const enum Cap { Trailers = 1, Upgrade = 2 }
export const END = 1;
/**
 * On a request's HEADERS: the request asks to upgrade its connection (WebSocket and the like). It is
 * an HTTP exchange until its answer: any status but 101 is an ordinary response; after a 101 (no
 * END) the stream is a tunnel (mux-tunnel.ts), bytes both ways. Sent only to a peer that announced
 * Cap.Upgrade; the head goes without END, so the stream stays open for the bytes after the 101.
 */
export const UPGRADE = 2;
/** On a PING: this one answers another. */
export const ACK = 1;
export const HDR = 10;
/** Bytes a sender may have in flight per stream before the receiver's window update. */
export const WINDOW = 256 * 1024;
/**
 * Bytes a sender may have in flight on the whole connection: what one peer can make us hold. A
 * peer of this version says so with a SETTINGS frame first and credits it with WINDOW frames on
 * stream 0; one of the previous version (no SETTINGS) never does, so we send it under stream
 * windows only, and a stream of its that overruns this is reset rather than the connection.
 */
export const CONN_WINDOW = 2 * 1024 * 1024;
/** Largest window a WINDOW frame may open (HTTP/2's limit): past it is a protocol error. */
export const MAX_WINDOW = 2 ** 31 - 1;
export const MAX_DATA = 64 * 1024;
export const MAX_FRAME = 1 << 20;
/** A head frame holds one HTTP/1.1 head: the codec's limit, with room for what the proxy adds. */
export const MAX_HEAD_FRAME = MAX_HEAD + 1024;
/** PING payloads are exactly this long (the previous version's empty ones are accepted). */
export const PING_LEN = 8;
/** Concurrent streams a peer may open on one connection; more are refused before they are read. */
export const MAX_STREAMS = 128;
/**
 * Bytes queued to a peer that is not reading: past this, senders wait and we stop reading the peer,
 * so what it makes us answer (pings, resets, window updates) cannot pile up either.
 */
export const HIGH_WATER = 4 * 1024 * 1024;

/** First byte of a RESET's payload (the previous version sent text or nothing: any byte >= 0x20). */
export const enum Rst { Refused = 1, Protocol = 2 }

/** Longest payload of each control frame; a longer one is a protocol error. */
const CONTROL_MAX: Record<number, number> = { [T.Reset]: 256, [T.Window]: 4, [T.Ping]: PING_LEN, [T.Settings]: 64 };

/** A turn buffer: a DATA frame of MAX_DATA with its header fits in one. */
const TURN_BUF = 80 * 1024;
/**
 * Turn buffers whose write completed, for the next turns of any connection. Under bulk traffic a
 * socket holds tens of them queued (up to HIGH_WATER): the pool keeps enough for them to come back
 * instead of each being garbage until a late GC (2.5 MB at most; a small turn touches only its first pages).
 */
const POOL_MAX = 32;
const pool: Buffer[] = [];

/**
 * What is queued this event-loop turn, copied into pooled buffers and written together (one write)
 * when the turn is over; a buffer goes back to the pool once its write completes. So a frame costs
 * no allocation of its own, and what is queued may be a view of a read buffer about to be reused
 * (read-buffer.ts). A peer that does not read what we send is not read either. mesh/1's frames and
 * HTTP/2's go out through it.
 */
export class TurnWriter {
  /** The buffer being filled, and how much of it is. */
  private cur: Buffer | null = null;
  private len = 0;
  /** Buffers filled earlier this turn, and how much of each. */
  private full: Buffer[] | null = null;
  private fullLen: number[] = [];
  private size = 0;
  private scheduled = false;
  /** The buffers of writes not yet complete, oldest first (a socket completes its writes in order). */
  private readonly inflight: Buffer[] = [];
  private readonly written = (err?: Error | null): void => {
    const b = this.inflight.shift();
    // A failed write's buffer may still be held by the socket: left to the GC.
    if (b !== undefined && !err) release(b);
  };

  constructor(readonly sock: net.Socket) {}

  /** Enough is queued to the peer: senders wait for the socket's 'drain'. */
  get congested(): boolean {
    return this.size + this.sock.writableLength > HIGH_WATER;
  }

  queue(b: Buffer): void {
    const n = b.length;
    const at = this.reserve(n);
    b.copy(this.cur!, at);
  }

  /**
   * Room for n bytes in this turn's buffer: returns where they go in `this.cur`, which the caller
   * fills at once (nothing else may be queued in between).
   */
  protected reserve(n: number): number {
    let c = this.cur;
    if (c === null || this.len + n > c.length) {
      if (c !== null && this.len > 0) {
        (this.full ??= []).push(c);
        this.fullLen.push(this.len);
      } else if (c !== null) release(c);
      c = this.cur = n <= TURN_BUF ? (pool.pop() ?? Buffer.allocUnsafeSlow(TURN_BUF)) : Buffer.allocUnsafeSlow(n);
      this.len = 0;
    }
    const at = this.len;
    this.len += n;
    this.size += n;
    if (!this.scheduled) {
      this.scheduled = true;
      // setImmediate runs after every ready socket of this poll has been read: that is the batch.
      setImmediate(flushTurn, this);
    }
    return at;
  }

  /** The buffer reserve() made room in. */
  protected get buf(): Buffer {
    return this.cur!;
  }

  flush(): void {
    this.scheduled = false;
    const c = this.cur;
    if (c === null) return;
    const full = this.full;
    const len = this.len;
    this.cur = null;
    this.full = null;
    this.len = 0;
    this.size = 0;
    const fullLen = this.fullLen;
    const sock = this.sock;
    if (sock.destroyed) {
      release(c);
      if (full !== null) for (const f of full) release(f);
      this.fullLen = [];
      return;
    }
    if (full === null) this.send(c, len);
    else {
      this.fullLen = [];
      // One writev: the socket takes them together once uncorked.
      sock.cork();
      for (let i = 0; i < full.length; i++) this.send(full[i]!, fullLen[i]!);
      this.send(c, len);
      sock.uncork();
    }
    // The peer is not reading what we send: stop reading it until it does ('drain' resumes).
    if (sock.writableLength > HIGH_WATER && !sock.isPaused()) sock.pause();
  }

  /** Writes the first `len` bytes of `b`; `b` comes back to the pool once the write completes. */
  private send(b: Buffer, len: number): void {
    this.inflight.push(b);
    this.sock.write(len === b.length ? b : b.subarray(0, len), this.written);
  }
}

function flushTurn(w: TurnWriter): void {
  w.flush();
}

/** A turn buffer back to the pool (a larger one, made for one big frame, is left to the GC). */
function release(b: Buffer): void {
  if (b.length === TURN_BUF && pool.length < POOL_MAX) pool.push(b);
}

/** mesh/1's frames, queued this turn: each written in place in the turn's buffer. */
export class FrameWriter extends TurnWriter {

  /** A frame header at `at` of the turn's buffer. */
  private header(at: number, type: number, flags: number, id: number, len: number): Buffer {
    const b = this.buf;
    b[at] = type;
    b[at + 1] = flags;
    b.writeUInt32BE(id, at + 2);
    b.writeUInt32BE(len, at + 6);
    return b;
  }

  frame(type: number, flags: number, id: number, payload: Buffer | null): void {
    const len = payload?.length ?? 0;
    const at = this.reserve(HDR + len);
    const b = this.header(at, type, flags, id, len);
    if (len > 0) payload!.copy(b, at + HDR);
  }

  /** A HEADERS frame from head text, written straight into the turn's buffer. */
  head(flags: number, id: number, head: string): void {
    const len = Buffer.byteLength(head, 'latin1');
    const at = this.reserve(HDR + len);
    this.header(at, T.Headers, flags, id, len).write(head, at + HDR, len, 'latin1');
  }

  window(id: number, n: number): void {
    const at = this.reserve(HDR + 4);
    this.header(at, T.Window, 0, id, 4).writeUInt32BE(n, at + HDR);
  }

  /** The answer to a PING: its payload (at most PING_LEN bytes) back. */
  pingAck(payload: Buffer): void {
    this.frame(T.Ping, ACK, 0, payload);
  }

  /** SETTINGS: this end keeps to the connection window and credits the peer's (see CONN_WINDOW); its stream limit and capabilities. */
  settings(caps: number): void {
    const at = this.reserve(HDR + 8);
    const b = this.header(at, T.Settings, 0, 0, 8);
    b.writeUInt32BE(MAX_STREAMS, at + HDR);
    b.writeUInt32BE(caps, at + HDR + 4);
  }
}

function maxLength(type: number): number {
  if (type === T.Data) return MAX_FRAME;
  if (type === T.Headers || type === T.Trailers) return MAX_HEAD_FRAME;
  return CONTROL_MAX[type] ?? 256;
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
      if (len > maxLength(type)) throw new ParseError(400, `mesh/1 frame of type ${type} too large (${len} bytes)`);
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

export function headText(first: string, raw: string[]): string {
  let head = first;
  for (let i = 0; i < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return head + '\r\n';
}

export function resetError(reason: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(reason);
  e.code = 'ECONNRESET';
  return e;
}


export const EMPTY = Buffer.alloc(0);

// Trailer fields: what a head allows, and never one that frames, routes or identifies a message.
const FIELD_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const NOT_TRAILERS = new Set(['content-length', 'transfer-encoding', 'host', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']);

function trailerAllowed(lower: string): boolean {
  return !NOT_TRAILERS.has(lower) && !isIdentityHeader(lower);
}

/** A Trailers frame's payload from a flat list (fields that may not trail left out), or null when none is left. */
export function trailerText(raw: readonly string[]): string | null {
  let s = '';
  for (let i = 0; i < raw.length; i += 2) if (trailerAllowed(raw[i]!.toLowerCase())) s += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return s === '' ? null : `${s}\r\n`;
}

/** The fields of a Trailers frame; throws ParseError on anything a head would not allow. */
export function parseTrailers(payload: Buffer): string[] {
  const s = payload.toString('latin1', 0, headEndOf(payload));
  const out: string[] = [];
  for (const line of s.split('\r\n')) {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_NAME.test(name) || BAD_VALUE.test(value)) throw new ParseError(400, 'invalid trailer field');
    if (!trailerAllowed(name.toLowerCase())) throw new ParseError(400, `${name} is not allowed in trailers`);
    out.push(name, value);
  }
  return out;
}

export function headEndOf(payload: Buffer): number {
  // A head frame holds exactly one head: its text ends with CRLFCRLF.
  const n = payload.length;
  if (n < 4 || payload[n - 4] !== 13 || payload[n - 3] !== 10 || payload[n - 2] !== 13 || payload[n - 1] !== 10) {
    throw new ParseError(400, 'mesh/1 head frame does not end with CRLFCRLF');
  }
  return n - 4;
}

