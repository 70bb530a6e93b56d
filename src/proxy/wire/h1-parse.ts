// HTTP/1.1 message heads and body framing, parsed the way an intermediary must (RFC 9112): strictly
// enough that a request this proxy forwards means the same thing to the next hop. Node's `http`
// objects cost more CPU than the proxying itself, so the data path parses for itself.

import { codeOfStatus, type ErrorCode } from '../errors.js';

export const MAX_HEAD = 16 * 1024;

/** A message refused by its framing; its stable code (errors.ts) follows from the status. */
export class ParseError extends Error {
  constructor(readonly status: number, reason: string) {
    super(reason);
  }

  get code(): ErrorCode {
    return codeOfStatus(this.status);
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/**
 * The methods an HTTP/1.1 request may carry: the registered ones llhttp (Node's parser) knows. Another token is
 * refused, as Envoy does by default (allow_custom_methods): a hop behind us may not read it as a request line,
 * and then would read what follows differently than we did.
 */
const METHODS = new Set(['ACL', 'BIND', 'CHECKOUT', 'CONNECT', 'COPY', 'DELETE', 'GET', 'HEAD', 'LINK', 'LOCK', 'M-SEARCH', 'MERGE',
  'MKACTIVITY', 'MKCALENDAR', 'MKCOL', 'MOVE', 'NOTIFY', 'OPTIONS', 'PATCH', 'POST', 'PROPFIND', 'PROPPATCH', 'PURGE', 'PUT', 'QUERY',
  'REBIND', 'REPORT', 'SEARCH', 'SOURCE', 'SUBSCRIBE', 'TRACE', 'UNBIND', 'UNLINK', 'UNLOCK', 'UNSUBSCRIBE']);
// Field values: visible ASCII, obs-text, space and tab; no other control characters (CR, LF, NUL).
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
// A request target is visible ASCII without '#': a fragment is never sent (RFC 9112 3.2), anything else is %-encoded.
const TARGET = /^[\x21-\x22\x24-\x7e]+$/;
const DIGITS = /^[0-9]{1,15}$/;

/** A request or response head; the framing fields are what the body decoder needs. */
export class Head {
  method = '';
  url = '';
  status = 0;
  reason = '';
  /** HTTP/1.minor */
  minor = 1;
  raw: string[] = [];
  /** -1 when there is no Content-Length. */
  contentLength = -1;
  chunked = false;
  /** Transfer-Encoding present but not ending in chunked (responses only: read until close). */
  otherCoding = false;
  hosts = 0;
  host: string | undefined = undefined;
  connClose = false;
  connKeepAlive = false;
  connUpgrade = false;
  /** How many Upgrade headers there were, and the first one's value (lower case). */
  upgrades = 0;
  upgradeTo = '';
  expectContinue = false;
  /** A request's TE names `trailers`: its client takes trailer fields in a chunked response. */
  teTrailers = false;
}

function trimOws(s: string, from: number): string {
  let a = from;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 32 || s.charCodeAt(a) === 9)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 32 || s.charCodeAt(b - 1) === 9)) b--;
  return s.slice(a, b);
}

/**
 * Whether a header (lower-case name) says how a message is framed, where it goes or who sent it: such a header is
 * never hop-by-hop, so a Connection header naming it is an attempt to make the next hop read the message otherwise.
 */
export function isProtectedHeader(l: string): boolean {
  return l === 'content-length' || l === 'transfer-encoding' || l === 'host' || isIdentityHeader(l);
}

/** The identity header in any spelling a server might fold together: `mesh-client-id`, `mesh_client_id`, ... */
export function isIdentityHeader(l: string): boolean {
  if (l.length !== 14) return false;
  for (let i = 0; i < 14; i++) {
    const c = l.charCodeAt(i);
    const want = IDENTITY_CODES[i]!;
    if (c !== want && !(want === 45 && c === 95)) return false;
  }
  return true;
}
const IDENTITY_CODES = Array.from('mesh-client-id', (c) => c.charCodeAt(0));

/**
 * A Transfer-Encoding value as a list of codings (lower case), or null when it is not one: an empty or whitespace-only
 * value, an empty element, or an element that is not a token (parameters allowed).
 */
function codings(te: string): string[] | null {
  const out: string[] = [];
  for (const part of te.split(',')) {
    const c = trimOws(part, 0).toLowerCase();
    const semi = c.indexOf(';');
    const name = semi < 0 ? c : trimOws(c.slice(0, semi), 0);
    if (!TOKEN.test(name)) return null;
    out.push(c);
  }
  return out;
}

/** Reads the fields after the start line into `h`; throws ParseError on anything malformed. */
function parseFields(s: string, pos: number, h: Head, request: boolean): void {
  const raw = h.raw;
  let te: string | null = null;
  while (pos < s.length) {
    let eol = s.indexOf('\r\n', pos);
    if (eol < 0) eol = s.length;
    const c0 = s.charCodeAt(pos);
    if (c0 === 32 || c0 === 9) throw new ParseError(400, 'obsolete line folding in a header');
    const colon = s.indexOf(':', pos);
    if (colon < 0 || colon > eol) throw new ParseError(400, 'header line without a colon');
    const name = s.slice(pos, colon);
    if (!TOKEN.test(name)) throw new ParseError(400, 'invalid header name');
    const value = trimOws(s.slice(colon + 1, eol), 0);
    if (BAD_VALUE.test(value)) throw new ParseError(400, `invalid character in header ${name}`);
    raw.push(name, value);
    pos = eol + 2;
    // Only the few names that shape framing are looked at, found by length before lower-casing.
    switch (name.length) {
      case 2:
        if (request && name.toLowerCase() === 'te' && hasTrailers(value)) h.teTrailers = true;
        break;
      case 4:
        if (name.toLowerCase() === 'host') {
          h.hosts++;
          if (h.host === undefined) h.host = value;
        }
        break;
      case 6:
        if (request && name.toLowerCase() === 'expect' && value.toLowerCase() === '100-continue') h.expectContinue = true;
        break;
      case 7:
        if (name.toLowerCase() === 'upgrade' && h.upgrades++ === 0) h.upgradeTo = value.toLowerCase();
        break;
      case 10:
        if (name.toLowerCase() === 'connection') {
          for (const t of value.toLowerCase().split(',')) {
            const tok = trimOws(t, 0);
            if (tok === 'close') h.connClose = true;
            else if (tok === 'keep-alive') h.connKeepAlive = true;
            else if (tok === 'upgrade') h.connUpgrade = true;
            else if (isProtectedHeader(tok)) throw new ParseError(400, `Connection names ${tok}, which is not hop-by-hop`);
          }
        }
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') {
          if (!DIGITS.test(value)) throw new ParseError(400, 'invalid Content-Length');
          const n = Number(value);
          if (h.contentLength >= 0 && (request || n !== h.contentLength)) throw new ParseError(400, 'more than one Content-Length');
          h.contentLength = n;
        }
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') te = te === null ? value : `${te},${value}`;
        break;
    }
  }
  if (te !== null) {
    // Present at all, even empty, it decides the framing: anything but a clean list is refused, never ignored.
    const list = codings(te);
    if (list === null) throw new ParseError(400, 'invalid Transfer-Encoding');
    const chunkedAt = list.indexOf('chunked');
    if (request) {
      // Only chunked is decoded; other codings would have to be forwarded as they are, so they are refused.
      if (list.length !== 1 || chunkedAt !== 0) throw new ParseError(400, 'unsupported Transfer-Encoding');
      if (h.contentLength >= 0) throw new ParseError(400, 'both Content-Length and Transfer-Encoding');
    } else if (chunkedAt >= 0 && chunkedAt !== list.length - 1) throw new ParseError(400, 'chunked is not the last Transfer-Encoding');
    if (chunkedAt >= 0) h.chunked = true;
    else h.otherCoding = true;
    // Transfer-Encoding overrides Content-Length (RFC 9112 6.3).
    h.contentLength = -1;
  }
}

/** Whether a TE value lists `trailers` (RFC 9110 10.1.4). */
function hasTrailers(te: string): boolean {
  for (const t of te.split(',')) if (trimOws(t, 0).toLowerCase() === 'trailers') return true;
  return false;
}

function checkLines(s: string): void {
  // Every line ends in CRLF: a bare CR or LF would split differently at the next hop.
  let i = s.indexOf('\n');
  while (i >= 0) {
    if (s.charCodeAt(i - 1) !== 13) throw new ParseError(400, 'bare LF in the head');
    i = s.indexOf('\n', i + 1);
  }
  i = s.indexOf('\r');
  while (i >= 0) {
    if (s.charCodeAt(i + 1) !== 10) throw new ParseError(400, 'bare CR in the head');
    i = s.indexOf('\r', i + 1);
  }
}

function version(v: string): number {
  if (v === 'HTTP/1.1') return 1;
  if (v === 'HTTP/1.0') return 0;
  if (/^HTTP\/[0-9]\.[0-9]$/.test(v)) throw new ParseError(505, `${v} is not supported`);
  throw new ParseError(400, 'invalid HTTP version');
}

/** Parses a request head; `end` is where its CRLFCRLF starts. */
export function parseRequestHead(buf: Buffer, end: number): Head {
  const s = buf.toString('latin1', 0, end);
  checkLines(s);
  const h = new Head();
  let eol = s.indexOf('\r\n');
  if (eol < 0) eol = s.length;
  const sp1 = s.indexOf(' ');
  const sp2 = sp1 < 0 ? -1 : s.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || sp2 > eol) throw new ParseError(400, 'invalid request line');
  h.method = s.slice(0, sp1);
  h.url = s.slice(sp1 + 1, sp2);
  if (!METHODS.has(h.method)) throw TOKEN.test(h.method) ? new ParseError(501, `unknown method ${h.method}`) : new ParseError(400, 'invalid method');
  if (!TARGET.test(h.url)) throw new ParseError(400, 'invalid request target');
  h.minor = version(s.slice(sp2 + 1, eol));
  parseFields(s, eol + 2, h, true);
  // HTTP/1.0 has no chunked framing: a 1.0 hop behind us would read the body otherwise (RFC 9112 6.1).
  if (h.minor === 0 && h.chunked) throw new ParseError(400, 'Transfer-Encoding is not allowed in HTTP/1.0');
  return h;
}

/** Parses a response head; `end` is where its CRLFCRLF starts. */
export function parseResponseHead(buf: Buffer, end: number): Head {
  const s = buf.toString('latin1', 0, end);
  checkLines(s);
  const h = new Head();
  let eol = s.indexOf('\r\n');
  if (eol < 0) eol = s.length;
  const line = s.slice(0, eol);
  h.minor = version(line.slice(0, 8));
  const code = line.slice(9, 12);
  if (line.charCodeAt(8) !== 32 || !/^[1-9][0-9][0-9]$/.test(code)) throw new ParseError(502, 'invalid status line');
  h.status = Number(code);
  h.reason = line.length > 13 ? line.slice(13) : '';
  parseFields(s, eol + 2, h, false);
  return h;
}

const enum Mode { Done, Length, Chunked, UntilClose }
const enum Chunk { Size, Data, DataEnd, Trailer }

export interface BodyTarget {
  onBody(chunk: Buffer): void;
  onBodyEnd(): void;
}

/**
 * Reads one message body from a connection's bytes, handing the payload on as it comes: length
 * delimited, chunked (re-framed by whoever writes it next) or until the connection closes.
 */
export class BodyDecoder {
  private mode = Mode.Done;
  private remaining = 0;
  private state = Chunk.Size;
  private line = '';
  private trailerBytes = 0;
  /** The trailer fields of the body just ended (chunked only), flat [name, value, ...]; null when there were none. */
  trailers: string[] | null = null;

  get done(): boolean {
    return this.mode === Mode.Done;
  }

  get untilClose(): boolean {
    return this.mode === Mode.UntilClose;
  }

  start(h: Head, noBody: boolean): void {
    this.trailers = null;
    if (noBody) this.mode = Mode.Done;
    else if (h.chunked) {
      this.mode = Mode.Chunked;
      this.state = Chunk.Size;
      this.line = '';
    } else if (h.contentLength > 0) {
      this.mode = Mode.Length;
      this.remaining = h.contentLength;
    } else if (h.otherCoding || (h.status !== 0 && h.contentLength < 0)) {
      this.mode = Mode.UntilClose;
    } else this.mode = Mode.Done;
  }

  /** Consumes body bytes from buf[at..]; returns where the body ended (or buf.length). */
  feed(buf: Buffer, at: number, t: BodyTarget): number {
    if (this.mode === Mode.Length) {
      const n = Math.min(this.remaining, buf.length - at);
      this.remaining -= n;
      if (this.remaining === 0) this.mode = Mode.Done;
      if (n > 0) t.onBody(at === 0 && n === buf.length ? buf : buf.subarray(at, at + n));
      if (this.mode === Mode.Done) t.onBodyEnd();
      return at + n;
    }
    if (this.mode === Mode.UntilClose) {
      if (at < buf.length) t.onBody(at === 0 ? buf : buf.subarray(at));
      return buf.length;
    }
    if (this.mode === Mode.Chunked) return this.chunked(buf, at, t);
    return at;
  }

  /** The connection ended: a close-delimited body is complete, any other is cut short. */
  close(t: BodyTarget): boolean {
    if (this.mode === Mode.UntilClose) {
      this.mode = Mode.Done;
      t.onBodyEnd();
      return true;
    }
    return this.mode === Mode.Done;
  }

  private chunked(buf: Buffer, at: number, t: BodyTarget): number {
    while (at < buf.length && this.mode === Mode.Chunked) {
      switch (this.state) {
        case Chunk.Size: {
          const nl = buf.indexOf(10, at);
          const end = nl < 0 ? buf.length : nl + 1;
          this.line += buf.toString('latin1', at, end);
          at = end;
          if (this.line.length > 4096) throw new ParseError(400, 'chunk size line too long');
          if (nl < 0) break;
          this.remaining = chunkSize(this.line);
          this.line = '';
          if (this.remaining === 0) {
            this.state = Chunk.Trailer;
            this.trailerBytes = 0;
          } else this.state = Chunk.Data;
          break;
        }
        case Chunk.Data: {
          const n = Math.min(this.remaining, buf.length - at);
          t.onBody(buf.subarray(at, at + n));
          at += n;
          this.remaining -= n;
          if (this.remaining === 0) {
            this.state = Chunk.DataEnd;
            this.line = '';
          }
          break;
        }
        case Chunk.DataEnd: {
          // The CRLF after the data may come split across reads.
          while (at < buf.length && this.line.length < 2) this.line += String.fromCharCode(buf[at++]!);
          if (this.line.length < 2) break;
          if (this.line !== '\r\n') throw new ParseError(400, 'chunk data not followed by CRLF');
          this.line = '';
          this.state = Chunk.Size;
          break;
        }
        case Chunk.Trailer: {
          const nl = buf.indexOf(10, at);
          const end = nl < 0 ? buf.length : nl + 1;
          this.line += buf.toString('latin1', at, end);
          this.trailerBytes += end - at;
          at = end;
          if (this.trailerBytes > MAX_HEAD) throw new ParseError(400, 'trailers too large');
          if (nl < 0) break;
          if (!this.line.endsWith('\r\n')) throw new ParseError(400, 'bare LF in chunked trailers');
          // An empty line ends the body. Each trailer is a well-formed field, or a next hop reading the section
          // otherwise would find its end elsewhere; the section's size is bounded as a head's is.
          if (this.line === '\r\n') {
            this.mode = Mode.Done;
            t.onBodyEnd();
          } else trailerField(this.line, (this.trailers ??= []));
          this.line = '';
          break;
        }
      }
    }
    return at;
  }
}

// chunk-ext (RFC 9112 7.1.1): *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ). Parsers that skip
// extensions loosely (to the next CRLF, or not minding quotes) find a different chunk end: only the grammar passes.
const TOK = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+";
const QUOTED = '"(?:[\\t \\x21\\x23-\\x5b\\x5d-\\x7e\\x80-\\xff]|\\\\[\\t \\x21-\\x7e\\x80-\\xff])*"';
const CHUNK_EXT = new RegExp(`^(?:[ \\t]*;[ \\t]*${TOK}(?:[ \\t]*=[ \\t]*(?:${TOK}|${QUOTED}))?)*$`);
const HEX = /^[0-9a-fA-F]{1,12}$/;

function chunkSize(line: string): number {
  if (!line.endsWith('\r\n')) throw new ParseError(400, 'bare LF in a chunk size line');
  const semi = line.indexOf(';');
  const hex = semi < 0 ? line.slice(0, -2) : line.slice(0, semi);
  if (!HEX.test(hex)) throw new ParseError(400, 'invalid chunk size');
  if (semi >= 0 && !CHUNK_EXT.test(line.slice(semi, -2))) throw new ParseError(400, 'invalid chunk extension');
  return parseInt(hex, 16);
}

/**
 * A trailer line (with its CRLF) is a field like any in a head, and never one that frames, routes or identifies
 * (refused: RFC 9110 6.5.1); it is added to `out`. Which others go on is the forwarder's choice (h1-headers.ts).
 */
function trailerField(line: string, out: string[]): void {
  const colon = line.indexOf(':');
  const name = colon > 0 ? line.slice(0, colon) : '';
  const value = trimOws(line.slice(0, -2), colon + 1);
  if (!TOKEN.test(name) || BAD_VALUE.test(value)) throw new ParseError(400, 'invalid trailer field');
  if (isProtectedHeader(name.toLowerCase())) throw new ParseError(400, `${name} is not allowed in trailers`);
  out.push(name, value);
}

const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/** Frames a body chunk for a chunked message. */
export function chunkFrame(chunk: Buffer): Buffer {
  const size = `${chunk.length.toString(16)}\r\n`;
  const out = Buffer.allocUnsafe(size.length + chunk.length + 2);
  out.write(size, 0, 'latin1');
  chunk.copy(out, size.length);
  CRLF.copy(out, size.length + chunk.length);
  return out;
}

export { LAST_CHUNK };

/** The last chunk with a trailer section (fields already checked by whoever forwards them). */
export function lastChunk(trailers: readonly string[] | null | undefined): Buffer {
  if (trailers == null || trailers.length === 0) return LAST_CHUNK;
  let s = '0\r\n';
  for (let i = 0; i < trailers.length; i += 2) s += `${trailers[i]}: ${trailers[i + 1]}\r\n`;
  return Buffer.from(`${s}\r\n`, 'latin1');
}

/** Head text and a body chunk in one buffer, so a small message is one write (and one TLS record). */
export function withHead(head: string, chunk: Buffer | null): Buffer {
  const hl = Buffer.byteLength(head, 'latin1');
  const out = Buffer.allocUnsafe(hl + (chunk?.length ?? 0));
  out.write(head, 0, 'latin1');
  if (chunk) chunk.copy(out, hl);
  return out;
}

/** Finds the end of a head (the CRLFCRLF), or -1. */
export function headEnd(buf: Buffer): number {
  return buf.indexOf('\r\n\r\n', 0, 'latin1');
}
