// What a client's bytes mean, and whether what the app saw through a sidecar is that. The meaning comes from llhttp
// (Node's parser, not the proxy's): the requests a Node server reading the bytes directly would see. The app behind
// the sidecar may see fewer of them (refused, denied, cut after an error), never another one, never one with another
// body, never an identity the proxy did not set, never a message it could not parse.
import http from 'node:http';
import { Duplex } from 'node:stream';
import type { Seen } from './backend.js';
import { tunnels } from '../../../src/proxy/wire/h1-headers.js';

export interface Meant {
  method: string;
  url: string;
  rawHeaders: string[];
  body: Buffer;
  /** The whole body came (false: the bytes ended within it). */
  complete: boolean;
  upgrade: boolean;
}

/** What the client's bytes mean: the requests in them, and whether a parse error ended them. */
export interface Meaning {
  requests: Meant[];
  error: boolean;
}

/** The requests a Node server reads from `bytes` sent on one connection (in order), read in-process. */
export function reference(bytes: Buffer): Promise<Meaning> {
  return new Promise((resolve) => {
    const meant: Meant[] = [];
    let error = false;
    let open = 0;
    let ended = false;
    const server = http.createServer((req, res) => {
      const m: Meant = { method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders, body: Buffer.alloc(0), complete: false, upgrade: false };
      meant.push(m);
      open++;
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => {
        parts.push(c);
        m.body = Buffer.concat(parts);
      });
      req.on('end', () => {
        m.complete = true;
        res.end();
      });
      req.on('close', () => {
        m.complete ||= req.complete;
        open--;
        done();
      });
    });
    server.on('upgrade', (req: http.IncomingMessage, sock: Duplex, rest: Buffer) => {
      const m: Meant = { method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders, body: Buffer.alloc(0), complete: true, upgrade: true };
      meant.push(m);
      const h = { method: m.method, minor: req.httpVersionMinor, connUpgrade: true, upgrades: req.rawHeaders.filter((_, i, a) => i % 2 === 0 && a[i]!.toLowerCase() === 'upgrade').length, upgradeTo: String(req.headers.upgrade ?? '').toLowerCase() };
      if (tunnels(h) || req.headers['transfer-encoding'] !== undefined) {
        sock.destroy();
        return;
      }
      // An upgrade the proxy does not make (h2c and the like): RFC 9110 7.8 lets a server ignore it, and then
      // what follows is the body and the next request, read as such.
      m.upgrade = false;
      const n = Number(req.headers['content-length'] ?? 0);
      m.body = rest.subarray(0, n);
      sock.destroy();
      open++;
      void reference(rest.subarray(n)).then((more) => {
        meant.push(...more.requests);
        error ||= more.error;
        open--;
        done();
      });
    });
    server.on('clientError', (err: NodeJS.ErrnoException, sock: Duplex) => {
      if (err.code !== 'HPE_INVALID_EOF_STATE') error = true;
      // The requests read before the error finish first (their ends are queued for the next turns).
      setImmediate(() => setImmediate(() => sock.destroy()));
    });
    const sock = new Duplex({
      read() {},
      write(_c, _e, cb) {
        cb();
      },
    });
    let finished = false;
    const done = () => {
      if (!finished && ended && open === 0) {
        finished = true;
        sock.destroy();
        resolve({ requests: meant, error });
      }
    };
    sock.on('close', () => {
      ended = true;
      done();
    });
    server.emit('connection', sock);
    sock.push(bytes);
    // Everything sent has been parsed once the turns that follow have run; the end then settles a partial message.
    setImmediate(() => setImmediate(() => {
      ended = true;
      sock.push(null);
      setImmediate(done);
      setTimeout(() => {
        open = 0;
        done();
      }, 50);
    }));
  });
}

/** Header names the proxy manages (hop-by-hop, framing, Host, identity, trace context): left out of comparisons. */
const MANAGED = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate',
  'http2-settings', 'content-length', 'transfer-encoding', 'host', 'traceparent', 'expect']);
export const isIdentityName = (n: string) => n.toLowerCase().replace(/_/g, '-') === 'mesh-client-id';

function endToEnd(raw: string[]): string[] {
  const named = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'connection') for (const t of raw[i + 1]!.split(',')) named.add(t.trim().toLowerCase());
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const l = raw[i]!.toLowerCase();
    if (!MANAGED.has(l) && !named.has(l) && !isIdentityName(l)) out.push(`${l}: ${raw[i + 1]}`);
  }
  return out.sort();
}

/** origin-form of a target (the proxy sends absolute-form targets on as origin-form). */
function originForm(url: string): string {
  const m = /^http:\/\/[^/?]*(.*)$/i.exec(url);
  return m ? m[1] || '/' : url;
}

function same(m: Meant, s: Seen): string | null {
  if (m.method !== s.method) return `method ${s.method}, sent ${m.method}`;
  if (originForm(m.url) !== s.url) return `target ${s.url}, sent ${m.url}`;
  if (m.upgrade !== s.upgrade) return s.upgrade ? 'taken as an upgrade' : 'an upgrade taken as a request';
  // A request the proxy cut short carries a beginning of the body; a whole one carries exactly the body sent.
  if (s.complete ? !m.complete || !m.body.equals(s.body) : !m.body.subarray(0, s.body.length).equals(s.body)) {
    return `a body of ${s.body.length} bytes${s.complete ? '' : ' so far'}, sent ${m.body.length}${m.complete ? '' : ' so far'}`;
  }
  const a = endToEnd(m.rawHeaders).join('\n');
  const b = endToEnd(s.rawHeaders).join('\n');
  if (a !== b) return `headers\n${b}\nsent\n${a}`;
  return null;
}

export interface Verdict {
  /** What went wrong, one line each; empty when the case passed. */
  faults: string[];
  /** The requests meant after the last one the app saw: they may still arrive (through two hops) during the next case. */
  rest: Meant[];
}

/**
 * Checks what the app saw (`seen`, in arrival order) against what the client meant: each request the app saw is one
 * the client sent, in the client's order, with the same method, target, body and end-to-end headers; it carries
 * exactly the identity the proxy vouches for on this side (`identity`, or none); nothing under `deniedPrefix`
 * passed; the app could parse every byte (`errors`).
 */
export function judge(meaning: Meaning, seen: Seen[], errors: string[], identity: string | null, deniedPrefix: string | null): Verdict {
  const meant = meaning.requests;
  const faults: string[] = [];
  let at = 0;
  for (const s of seen) {
    const ids = [];
    for (let i = 0; i < s.rawHeaders.length; i += 2) if (isIdentityName(s.rawHeaders[i]!)) ids.push(`${s.rawHeaders[i]}: ${s.rawHeaders[i + 1]}`);
    const want = identity === null ? [] : [`mesh-client-id: ${identity}`];
    if (ids.join('|') !== want.join('|')) faults.push(`${s.method} ${s.url} reached the app with identity [${ids.join(', ')}], the proxy vouches for [${want.join(', ')}]`);
    if (deniedPrefix !== null && s.url.startsWith(deniedPrefix)) faults.push(`${s.method} ${s.url} reached the app although policy denies it`);
    let why = 'the client sent no such request';
    let k = at;
    for (; k < meant.length; k++) {
      const w = same(meant[k]!, s);
      if (w === null) break;
      if (k === at) why = w;
    }
    if (k === meant.length) faults.push(`${s.method} ${s.url} (connection ${s.conn}) reached the app: ${why}`);
    else at = k + 1;
  }
  // Bytes the client's own parser refuses may be refused by the app too; bytes it reads cleanly must reach it clean.
  if (!meaning.error) for (const e of errors) faults.push(`the app could not parse what the proxy sent: ${e}`);
  return { faults, rest: meant.slice(at) };
}
