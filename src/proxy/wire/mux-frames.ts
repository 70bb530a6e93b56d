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

/**
 * Buffers queued this event-loop turn, written together (one write) when the turn is over; a peer
 * that does not read what we send is not read either. mesh/1's frames and HTTP/2's go out through it.
 */
export class TurnWriter {
  private out: Buffer[] = [];
  private size = 0;
  private scheduled = false;

  constructor(readonly sock: net.Socket) {}

  /** Enough is queued to the peer: senders wait for the socket's 'drain'. */
  get congested(): boolean {
    return this.size + this.sock.writableLength > HIGH_WATER;
  }

  queue(b: Buffer): void {
    this.out.push(b);
    this.size += b.length;
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate runs after every ready socket of this poll has been read: that is the batch.
    setImmediate(flushTurn, this);
  }

  flush(): void {
    this.scheduled = false;
    const out = this.out;
    if (out.length === 0 || this.sock.destroyed) return;
    this.sock.write(out.length === 1 ? out[0]! : Buffer.concat(out, this.size));
    this.out = [];
    this.size = 0;
    // The peer is not reading what we send: stop reading it until it does ('drain' resumes).
    if (this.sock.writableLength > HIGH_WATER && !this.sock.isPaused()) this.sock.pause();
  }
}

function flushTurn(w: TurnWriter): void {
  w.flush();
}

/** mesh/1's frames, queued this turn. */
export class FrameWriter extends TurnWriter {

  frame(type: number, flags: number, id: number, payload: Buffer | null): void {
    const h = Buffer.allocUnsafe(HDR);
    h[0] = type;
    h[1] = flags;
    h.writeUInt32BE(id, 2);
    h.writeUInt32BE(payload?.length ?? 0, 6);
    this.queue(h);
    if (payload !== null && payload.length > 0) this.queue(payload);
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
    this.queue(b);
  }

  window(id: number, n: number): void {
    const b = Buffer.allocUnsafe(HDR + 4);
    b[0] = T.Window;
    b[1] = 0;
    b.writeUInt32BE(id, 2);
    b.writeUInt32BE(4, 6);
    b.writeUInt32BE(n, HDR);
    this.queue(b);
  }

  /** The answer to a PING: its payload (at most PING_LEN bytes) back, in one buffer. */
  pingAck(payload: Buffer): void {
    const b = Buffer.allocUnsafe(HDR + payload.length);
    b[0] = T.Ping;
    b[1] = ACK;
    b.writeUInt32BE(0, 2);
    b.writeUInt32BE(payload.length, 6);
    payload.copy(b, HDR);
    this.queue(b);
  }

  /** SETTINGS: this end keeps to the connection window and credits the peer's (see CONN_WINDOW); its stream limit and capabilities. */
  settings(caps: number): void {
    const b = Buffer.alloc(HDR + 8);
    b[0] = T.Settings;
    b.writeUInt32BE(8, 6);
    b.writeUInt32BE(MAX_STREAMS, HDR);
    b.writeUInt32BE(caps, HDR + 4);
    this.queue(b);
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

