// HPACK (RFC 7541), as much as an HTTP/2 proxy end needs: a strict decoder (static and dynamic
// tables, Huffman, every length and index checked, a bounded table) and an encoder that never
// indexes (literals against the static table's names, no Huffman): nothing for a peer to grow here.

/** A header block the peer compressed wrongly: HTTP/2's COMPRESSION_ERROR, fatal for the connection. */
export class HpackError extends Error {}

/** Node's Latin-1 fast paths (what buf.toString('latin1') and buf.write(s, 'latin1') call), untyped in @types/node. */
type Latin1 = Buffer & { latin1Slice(start: number, end: number): string; latin1Write(s: string, at: number, length: number): number };

const STATIC: ReadonlyArray<readonly [string, string]> = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

/** The static table's first index of each name (what the encoder refers to). */
const STATIC_NAME = new Map<string, number>();
for (let i = STATIC.length - 1; i >= 0; i--) STATIC_NAME.set(STATIC[i]![0], i + 1);

// The Huffman code's lengths per symbol (256 octets and EOS), RFC 7541 Appendix B. The code is canonical
// (codes of one length ascend with the symbol), so the lengths alone define it.
const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30
];
const EOS = 256;

/**
 * A nibble-driven decoder (as nghttp2's): for each inner node of the code tree and each 4 input bits, the node
 * reached and the symbol completed on the way (at most one: no code is shorter than 5 bits; -2 for EOS, an error).
 * ACCEPT[n]: the bits that led to node n may end a string (padding: at most 7 bits, all ones).
 */
const NEXT = new Uint16Array(256 * 16);
const EMIT = new Int16Array(256 * 16);
const ACCEPT = new Uint8Array(256);

function buildHuffman(): void {
  const order = HUFFMAN_LENGTHS.map((_, s) => s).sort((a, b) => HUFFMAN_LENGTHS[a]! - HUFFMAN_LENGTHS[b]! || a - b);
  const codes = new Array<number>(257);
  let code = 0;
  for (let i = 0; i < order.length; i++) {
    if (i > 0) code = (code + 1) * 2 ** (HUFFMAN_LENGTHS[order[i]!]! - HUFFMAN_LENGTHS[order[i - 1]!]!);
    codes[order[i]!] = code;
  }
  // The tree: inner nodes numbered from 0 (the root); a child is an inner node (> 0) or a leaf (-1 - symbol).
  const kids: number[][] = [[0, 0]];
  const depth = [0];
  const ones = [true];
  for (let s = 0; s < 257; s++) {
    const len = HUFFMAN_LENGTHS[s]!;
    let n = 0;
    for (let b = len - 1; b >= 0; b--) {
      const bit = Math.floor(codes[s]! / 2 ** b) % 2;
      if (b === 0) kids[n]![bit] = -1 - s;
      else {
        if (kids[n]![bit] === 0) {
          kids.push([0, 0]);
          depth.push(depth[n]! + 1);
          ones.push(ones[n]! && bit === 1);
          kids[n]![bit] = kids.length - 1;
        }
        n = kids[n]![bit]!;
      }
    }
  }
  for (let n = 0; n < kids.length; n++) {
    ACCEPT[n] = ones[n]! && depth[n]! <= 7 ? 1 : 0;
    for (let v = 0; v < 16; v++) {
      let at = n;
      let emit = -1;
      for (let b = 3; b >= 0; b--) {
        const k = kids[at]![(v >> b) & 1]!;
        if (k > 0) at = k;
        else {
          emit = -1 - k === EOS ? -2 : -1 - k;
          at = 0;
          if (emit === -2) break;
        }
      }
      NEXT[n * 16 + v] = at;
      EMIT[n * 16 + v] = emit;
    }
  }
}
// Built on the first Huffman-coded string, not at load: the loop runs hot enough to start the optimizing compiler,
// which an idle sidecar that never sees HTTP/2 then carries (~3 MB of RSS, issue 14).
let huffmanBuilt = false;

let scratch = Buffer.allocUnsafe(4096);

/** A Huffman-coded string, as Latin-1 (header octets as the HTTP/1.1 side reads them). */
export function huffmanDecode(src: Buffer, start: number, end: number): string {
  if (!huffmanBuilt) {
    buildHuffman();
    huffmanBuilt = true;
  }
  // Every symbol takes at least 5 bits.
  const max = Math.ceil(((end - start) * 8) / 5);
  if (scratch.length < max) scratch = Buffer.allocUnsafe(max);
  const out = scratch;
  let o = 0;
  let state = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i]!;
    let k = state * 16 + (byte >> 4);
    let e = EMIT[k]!;
    if (e >= 0) out[o++] = e;
    else if (e === -2) throw new HpackError('EOS in a Huffman-coded string');
    state = NEXT[k]!;
    k = state * 16 + (byte & 15);
    e = EMIT[k]!;
    if (e >= 0) out[o++] = e;
    else if (e === -2) throw new HpackError('EOS in a Huffman-coded string');
    state = NEXT[k]!;
  }
  if (ACCEPT[state] !== 1) throw new HpackError('bad padding in a Huffman-coded string');
  return (out as Latin1).latin1Slice(0, o);
}

/** What a decoded block was, besides its fields: fit to use, or refused (the stream, not the connection). */
export const enum Block { Ok = 0, Malformed = 1, TooLarge = 2 }

/**
 * One direction's decoder. `decode` appends a flat [name, value, ...] list (as sent, pseudo-headers included) and
 * returns the block's verdict; a compression error throws (the connection must end: its table is out of step).
 */
export class HpackDecoder {
  private names: string[] = [];
  private values: string[] = [];
  private size = 0;
  private capacity: number;
  /** Why the last block was refused (a field that HTTP/2 forbids), for the stream's error. */
  why = '';
  private at = 0;
  private src: Buffer = Buffer.alloc(0);

  /** `maxTable`: the table size this end allows (its SETTINGS_HEADER_TABLE_SIZE); `maxList`: the header list size it takes. */
  constructor(private readonly maxTable: number, private readonly maxList: number) {
    this.capacity = maxTable;
  }

  decode(block: Buffer, out: string[]): Block {
    this.src = block;
    this.at = 0;
    let verdict = Block.Ok;
    let listSize = 0;
    let fields = 0;
    const end = block.length;
    while (this.at < end) {
      const b = block[this.at]!;
      let name: string;
      let value: string;
      if (b & 0x80) {
        const i = this.int(7);
        name = this.nameAt(i);
        value = this.valueAt(i);
      } else if (b & 0x40) {
        const i = this.int(6);
        name = i === 0 ? this.str() : this.nameAt(i);
        value = this.str();
        this.insert(name, value);
      } else if (b & 0x20) {
        // A table size update: only before the block's first field, within what we allow.
        if (fields > 0) throw new HpackError('table size update after a header field');
        const n = this.int(5);
        if (n > this.maxTable) throw new HpackError(`table size update to ${n} past the ${this.maxTable} allowed`);
        this.capacity = n;
        this.evict(0);
        continue;
      } else {
        // Without indexing (0000) or never indexed (0001): a 4-bit prefix either way.
        const i = this.int(4);
        name = i === 0 ? this.str() : this.nameAt(i);
        value = this.str();
      }
      fields++;
      listSize += name.length + value.length + 32;
      if (verdict !== Block.Ok) continue;
      if (listSize > this.maxList) {
        verdict = Block.TooLarge;
        continue;
      }
      if (!validName(name)) {
        this.why = `header name ${JSON.stringify(name.slice(0, 64))} is not allowed in HTTP/2`;
        verdict = Block.Malformed;
        continue;
      }
      if (!validValue(value)) {
        this.why = `header ${name} has a value HTTP/2 does not allow`;
        verdict = Block.Malformed;
        continue;
      }
      out.push(name, value);
    }
    return verdict;
  }

  private int(prefix: number): number {
    const src = this.src;
    const max = (1 << prefix) - 1;
    let n = src[this.at++]! & max;
    if (n < max) return n;
    let shift = 0;
    for (;;) {
      if (this.at >= src.length) throw new HpackError('truncated integer');
      const b = src[this.at++]!;
      n += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) break;
      // Nothing here needs more than 2^28: a longer integer is an attack or an error.
      if (shift > 28) throw new HpackError('integer too large');
    }
    return n;
  }

  private str(): string {
    const src = this.src;
    if (this.at >= src.length) throw new HpackError('truncated string');
    const huffman = (src[this.at]! & 0x80) !== 0;
    const len = this.int(7);
    const start = this.at;
    const end = start + len;
    if (end > src.length) throw new HpackError('string past the end of the block');
    this.at = end;
    return huffman ? huffmanDecode(src, start, end) : (src as Latin1).latin1Slice(start, end);
  }

  private nameAt(i: number): string {
    if (i >= 1 && i <= STATIC.length) return STATIC[i - 1]![0];
    const d = this.names.length - (i - STATIC.length);
    if (i === 0 || d < 0) throw new HpackError(`index ${i} is not in the table`);
    return this.names[d]!;
  }

  private valueAt(i: number): string {
    if (i <= STATIC.length) return STATIC[i - 1]![1];
    return this.values[this.names.length - (i - STATIC.length)]!;
  }

  private insert(name: string, value: string): void {
    const size = name.length + value.length + 32;
    if (size > this.capacity) {
      // An entry larger than the table empties it (RFC 7541 4.4).
      this.names.length = 0;
      this.values.length = 0;
      this.size = 0;
      return;
    }
    this.evict(size);
    this.names.push(name);
    this.values.push(value);
    this.size += size;
  }

  /** Drops the oldest entries until `room` more bytes fit. */
  private evict(room: number): void {
    let drop = 0;
    while (this.size + room > this.capacity && drop < this.names.length) {
      this.size -= this.names[drop]!.length + this.values[drop]!.length + 32;
      drop++;
    }
    if (drop > 0) {
      this.names.splice(0, drop);
      this.values.splice(0, drop);
    }
  }
}

/** A field name HTTP/2 allows (RFC 9113 8.2.1): lower case, no controls, spaces, colons or non-ASCII; a leading ':' for pseudo-headers. */
function validName(n: string): boolean {
  const len = n.length;
  if (len === 0) return false;
  for (let i = n.charCodeAt(0) === 58 ? 1 : 0; i < len; i++) {
    const c = n.charCodeAt(i);
    if (c <= 0x20 || (c >= 0x41 && c <= 0x5a) || c >= 0x7f || c === 58) return false;
  }
  return true;
}

/** A field value HTTP/2 allows: no NUL, CR or LF, no white space at either end. */
function validValue(v: string): boolean {
  const len = v.length;
  if (len === 0) return true;
  const first = v.charCodeAt(0);
  const last = v.charCodeAt(len - 1);
  if (first === 0x20 || first === 0x09 || last === 0x20 || last === 0x09) return false;
  for (let i = 0; i < len; i++) {
    const c = v.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d) return false;
  }
  return true;
}

/** Bytes `encode` may write for these fields, at most. */
export function encodedBound(fields: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < fields.length; i++) n += fields[i]!.length + 6;
  return n;
}

/**
 * Writes a flat [name, value, ...] list (names lower case, Latin-1) into `out` from `at`; returns the end. Every field
 * is a literal never added to a table: its name indexed where the static table has it, else literal.
 */
export function encode(fields: readonly string[], out: Buffer, at: number): number {
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    const value = fields[i + 1]!;
    if (name === ':status' && value === '200') {
      out[at++] = 0x88;
      continue;
    }
    const idx = STATIC_NAME.get(name);
    if (idx === undefined) {
      out[at++] = 0;
      at = str(name, out, at);
    } else at = int(idx, 4, out, at);
    at = str(value, out, at);
  }
  return at;
}

function int(n: number, prefix: number, out: Buffer, at: number): number {
  const max = (1 << prefix) - 1;
  if (n < max) {
    out[at++] = n;
    return at;
  }
  out[at++] = max;
  n -= max;
  while (n >= 0x80) {
    out[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}

function str(s: string, out: Buffer, at: number): number {
  at = int(s.length, 7, out, at);
  return at + (out as Latin1).latin1Write(s, at, s.length);
}
