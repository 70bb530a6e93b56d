// Request-path normalisation for authorization: one canonical form, so a path rule sees the path the
// app will act on and cannot be bypassed by spelling it differently. Pure; the fast path allocates
// nothing for the plain paths most requests carry.
//
// The form (RFC 3986 §6.2.2 plus what servers behind a proxy are known to disagree on):
// - percent-escapes of unreserved characters (A-Z a-z 0-9 - . _ ~) are decoded, every other escape
//   keeps its encoding with upper-case hex; a malformed escape or %00 is refused;
// - empty segments collapse ('//' → '/'); '.' and '..' segments resolve (never above the root);
// - '%2F' and '%5C' are not separators: they stay encoded inside their segment, but a segment that
//   an app decoding them would split into a '.' or '..' segment is refused (…/..%2Fsecret);
// - ambiguous segments are refused: a dot segment with ';' parameters ('..;' — Tomcat resolves it)
//   and segments of three or more dots;
// - a raw '\', control characters, spaces and non-ASCII bytes are refused (not valid in a target);
// - matching stays case-sensitive, as paths are.
// `null` means: refuse the request (the proxy answers 400 or denies it).

const HEX = '0123456789ABCDEF';

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

const isUnreserved = (c: number): boolean =>
  (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;

/** Where the path ends: before a query or fragment. */
function pathEnd(target: string): number {
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c === 0x3f || c === 0x23) return i;
  }
  return target.length;
}

/**
 * The canonical form of a request target's path (query and fragment dropped), or null when it must
 * be refused. Idempotent: normalizePath(normalizePath(p)) === normalizePath(p).
 */
export function normalizePath(target: string): string | null {
  const end = pathEnd(target);
  if (end === 0 || target.charCodeAt(0) !== 0x2f) return null;
  // Fast path: printable ASCII, no escapes, no '//' and no '/.' — already canonical.
  let plain = true;
  for (let i = 0; i < end; i++) {
    const c = target.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === 0x5c) return null;
    if (c === 0x25 || (c === 0x2f && i + 1 < end && (target.charCodeAt(i + 1) === 0x2f || target.charCodeAt(i + 1) === 0x2e))) plain = false;
  }
  if (plain) return end === target.length ? target : target.slice(0, end);
  return slowNormalize(target, end);
}

function slowNormalize(target: string, end: number): string | null {
  // 1. Escapes: decode unreserved, upper-case the rest.
  let decoded = '';
  for (let i = 0; i < end; i++) {
    const c = target.charCodeAt(i);
    if (c !== 0x25) {
      decoded += target[i];
      continue;
    }
    const hi = i + 1 < end ? hexVal(target.charCodeAt(i + 1)) : -1;
    const lo = i + 2 < end ? hexVal(target.charCodeAt(i + 2)) : -1;
    if (hi < 0 || lo < 0) return null;
    const v = hi * 16 + lo;
    if (v === 0) return null;
    decoded += isUnreserved(v) ? String.fromCharCode(v) : `%${HEX[hi]}${HEX[lo]}`;
    i += 2;
  }
  // 2. Segments: collapse empties, resolve dots, refuse the ambiguous.
  const parts = decoded.split('/');
  const out: string[] = [];
  let trailing = false;
  for (let i = 1; i < parts.length; i++) {
    const seg = parts[i]!;
    const last = i === parts.length - 1;
    if (seg === '') {
      if (last) trailing = true;
      continue;
    }
    if (seg === '.' || seg === '..') {
      if (seg === '..') out.pop();
      if (last) trailing = true;
      continue;
    }
    if (ambiguous(seg)) return null;
    if (seg.includes('%2F') || seg.includes('%5C')) {
      for (const piece of seg.split(/%2F|%5C/)) if (piece === '.' || piece === '..' || ambiguous(piece)) return null;
    }
    out.push(seg);
  }
  if (out.length === 0) return '/';
  return trailing ? `/${out.join('/')}/` : `/${out.join('/')}`;
}

/** A segment servers disagree on: '..;x', '.;x' (dot segments with parameters) or '...'. */
function ambiguous(seg: string): boolean {
  if (seg.charCodeAt(0) !== 0x2e) return false;
  const semi = seg.indexOf(';');
  const base = semi < 0 ? seg : seg.slice(0, semi);
  if (semi >= 0 && (base === '.' || base === '..')) return true;
  return base.length >= 3 && /^\.+$/.test(base);
}

/** The normalised path with the original query kept (what a proxy forwards), or null. */
export function normalizeTarget(target: string): string | null {
  const path = normalizePath(target);
  if (path === null) return null;
  const q = target.indexOf('?');
  const h = target.indexOf('#');
  if (q < 0 || (h >= 0 && h < q)) return path;
  return h > q ? path + target.slice(q, h) : path + target.slice(q);
}
