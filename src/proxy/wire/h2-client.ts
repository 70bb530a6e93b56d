// The client side of HTTP/2 cleartext (the inbound sidecar to an app that serves h2c, gRPC servers
// among them): one connection per app address, a stream per request, each presented as the same
// Upstream the HTTP/1.1 client gives, so relay and the inbound path run unchanged. Our own codec
// (h2-conn.ts); the stream is the upstream request, one object per call and one for its response.
import net from 'node:net';
import { EventEmitter } from 'node:events';
import type { Upstream, UpstreamRequest, UpstreamResponse } from './h1-client.js';
import { h2Fields, isConnectionHeader } from './h2-headers.js';
import { Block } from './hpack.js';
import { E, H2Conn, H2Error, H2Stream } from './h2-conn.js';
import type { TcpStats } from '../metrics.js';

const END_STREAM = 0x1;
/** Requests that may wait for a stream when the app's SETTINGS_MAX_CONCURRENT_STREAMS is reached. */
const MAX_WAITING = 1024;
/** Stream ids run out at 2^31: a connection that used them up takes no more streams. */
const LAST_ID = 2 ** 31 - 3;
const EMPTY = Buffer.alloc(0);

function errorWith(code: string, message: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(message);
  e.code = code;
  return e;
}

export class H2Response extends EventEmitter implements UpstreamResponse {
  readonly statusMessage = '';
  trailers: string[] | null = null;

  constructor(readonly statusCode: number, readonly rawHeaders: string[], private readonly st: H2Request) {
    super();
  }

  pause(): void {
    this.st.pause();
  }

  resume(): void {
    this.st.resume();
  }
}

export class H2Request extends H2Stream implements Upstream {
  source: { resume(): void } | null = null;
  res: H2Response | null = null;
  /** The response ended, or the request failed: told once. */
  done = false;
  started = false;
  /** Body written before the stream could open (the app's stream limit), and whether it ended. */
  private early: Buffer[] | null = null;
  private earlyEnd = false;
  private earlyTrailers: string[] | null = null;
  private err: Error | null = null;

  constructor(readonly c: ClientConn, readonly fields: string[], readonly noBody: boolean, readonly reusedSocket: boolean) {
    super(c);
  }

  /** The stream opens: its head goes, then what was written meanwhile. */
  start(id: number): void {
    this.started = true;
    this.c.add(this, id);
    this.c.headers(this, this.fields, this.noBody);
    const early = this.early;
    this.early = null;
    if (early !== null) for (const b of early) this.c.write(this, b, false, null);
    if (this.earlyEnd) this.c.write(this, EMPTY, true, this.earlyTrailers);
    else if (early !== null) this.source?.resume();
  }

  write(chunk: Buffer): boolean {
    if (this.done || this.closed) return true;
    if (!this.started) {
      (this.early ??= []).push(chunk);
      return false;
    }
    return this.c.write(this, chunk, false, null);
  }

  /** `trailers` (the request's, from a chunked body or mesh/1) end the stream after its body. */
  end(chunk?: Buffer, trailers?: string[] | null): void {
    if (this.done || this.closed || this.noBody) return;
    const t = trailers != null && trailers.length > 0 ? h2Fields(trailers) : null;
    if (!this.started) {
      if (chunk !== undefined && chunk.length > 0) (this.early ??= []).push(chunk);
      this.earlyEnd = true;
      this.earlyTrailers = t;
      return;
    }
    this.c.write(this, chunk ?? EMPTY, true, t);
  }

  destroy(err?: Error): void {
    if (this.done) return;
    this.err = err ?? errorWith('ECONNRESET', 'request cancelled');
    if (this.started) this.c.reset(this, E.Cancel);
    else this.c.unqueue(this);
  }

  response(status: number, raw: string[]): void {
    const res = new H2Response(status, raw, this);
    this.res = res;
    this.emit('response', res);
  }

  received(trailers: string[]): void {
    if (this.res !== null) this.res.trailers = trailers;
  }

  data(chunk: Buffer): void {
    this.res?.emit('data', chunk);
  }

  ended(): void {
    if (this.done || this.res === null) return;
    this.done = true;
    this.res.emit('end');
  }

  gone(code: number, err: Error | null): void {
    if (this.done) return;
    this.done = true;
    if (this.res !== null) {
      this.res.emit('aborted');
      return;
    }
    this.emit('error', this.err ?? failure(code, err));
  }

  drained(): void {
    this.source?.resume();
  }
}

/** Why a stream failed, as the relay reads errors: a socket's own (ECONNREFUSED: never connected), or a reset. */
function failure(code: number, err: Error | null): Error {
  if (err !== null && typeof (err as NodeJS.ErrnoException).code === 'string') return err;
  if (err !== null) return errorWith('ECONNRESET', `the app's connection failed: ${err.message}`);
  // A stream the app refused before reading it (at its stream limit, or past its GOAWAY): nothing was processed.
  if (code === E.Refused) return errorWith('ECONNRESET', 'the app refused the stream');
  return errorWith('ECONNRESET', `the app reset the stream (HTTP/2 error ${code})`);
}

function hasPseudo(f: string[], from: number): boolean {
  for (let i = from; i < f.length; i += 2) if (f[i]!.charCodeAt(0) === 58) return true;
  return false;
}

/** One connection to an app address. */
export class ClientConn extends H2Conn {
  used = false;
  idleSince = Date.now();
  private readonly queued: H2Request[] = [];

  constructor(sock: net.Socket, readonly key: string, private readonly pool: H2Pool) {
    super(sock, false, 0);
  }

  get usable(): boolean {
    return !this.dead && !this.goingAway && this.lastId < LAST_ID;
  }

  begin(r: H2Request): void {
    this.used = true;
    if (this.open < this.peerMaxStreams && this.queued.length === 0) return this.startNext(r);
    if (this.queued.length >= MAX_WAITING) {
      r.done = true;
      setImmediate(() => r.emit('error', errorWith('ECONNRESET', 'too many requests waiting for the app\'s streams')));
      return;
    }
    this.queued.push(r);
  }

  private startNext(r: H2Request): void {
    const id = this.lastId === 0 ? 1 : this.lastId + 2;
    this.lastId = id;
    r.start(id);
  }

  unqueue(r: H2Request): void {
    const i = this.queued.indexOf(r);
    if (i >= 0) this.queued.splice(i, 1);
    r.gone(E.Cancel, null);
  }

  protected block(id: number, flags: number, fields: string[], verdict: Block): void {
    const st = this.streams.get(id) as H2Request | undefined;
    if (st === undefined) {
      if (this.idle(id)) throw new H2Error(E.Protocol, 'HEADERS on a stream not opened');
      return this.closedStream(id, 'HEADERS');
    }
    const end = (flags & END_STREAM) !== 0;
    if (st.res !== null) {
      // Trailers: they end the response, and carry no pseudo-headers.
      if (!end || verdict !== Block.Ok || hasPseudo(fields, 0)) return this.reset(st, E.Protocol);
      st.received(fields.slice());
      return this.remoteEnd(st);
    }
    if (verdict !== Block.Ok || fields[0] !== ':status' || hasPseudo(fields, 2)) return this.reset(st, E.Protocol);
    const s = fields[1]!;
    const status = s.length === 3 ? Number(s) : NaN;
    if (!(status >= 100 && status <= 599)) return this.reset(st, E.Protocol);
    if (status < 200) {
      // Informational answers are not passed on; 101 has no place in HTTP/2.
      if (end || status === 101) this.reset(st, E.Protocol);
      return;
    }
    const raw: string[] = [];
    for (let i = 2; i < fields.length; i += 2) {
      const n = fields[i]!;
      const v = fields[i + 1]!;
      if (isConnectionHeader(n, v)) return this.reset(st, E.Protocol);
      if (n === 'content-length') {
        const len = Number(v);
        if (!Number.isSafeInteger(len) || len < 0 || st.remaining >= 0) return this.reset(st, E.Protocol);
        st.remaining = len;
      }
      raw.push(n, v);
    }
    st.response(status, raw);
    if (end && !st.closed) {
      if (st.remaining > 0) return this.reset(st, E.Protocol);
      this.remoteEnd(st);
    }
  }

  protected override settled(): void {
    this.next();
  }

  protected override streamClosed(): void {
    this.idleSince = Date.now();
    this.next();
  }

  private next(): void {
    while (this.queued.length > 0 && this.open < this.peerMaxStreams && this.usable) this.startNext(this.queued.shift()!);
  }

  protected finished(err: Error | null): void {
    this.pool.drop(this);
    const w = this.queued.splice(0);
    for (const r of w) r.gone(E.Refused, err);
  }
}

export interface H2PoolOptions {
  /** A connection with no streams closes after this long. */
  idleMs: number;
  tcp?: TcpStats;
}

/** One HTTP/2 connection per app address; the app's SETTINGS_MAX_CONCURRENT_STREAMS bounds it (requests past it wait). */
export class H2Pool {
  private readonly conns = new Map<string, ClientConn>();
  private sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly o: H2PoolOptions) {}

  private conn(host: string, port: number): ClientConn {
    const key = `${host}:${port}`;
    const have = this.conns.get(key);
    if (have !== undefined && have.usable) return have;
    const sock = net.connect(port, host);
    // Window updates and small requests go out at once, not after a delayed ACK.
    sock.setNoDelay(true);
    this.o.tcp?.track(sock);
    const c = new ClientConn(sock, key, this);
    this.conns.set(key, c);
    this.startSweeper();
    return c;
  }

  drop(c: ClientConn): void {
    if (this.conns.get(c.key) === c) this.conns.delete(c.key);
  }

  request(o: UpstreamRequest): H2Request {
    const c = this.conn(o.host, o.port);
    let authority = `${o.host}:${o.port}`;
    let body = false;
    const raw = o.headers;
    const fields = [':method', o.method, ':scheme', 'http', ':path', o.path, ':authority', authority];
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!.toLowerCase();
      const v = raw[i + 1]!;
      if (n === 'host') {
        authority = v;
        continue;
      }
      if (n === 'transfer-encoding') body = true;
      else if (n === 'content-length' && v !== '0') body = true;
      if (n === 'te' || isConnectionHeader(n, v)) continue;
      fields.push(n, v);
    }
    fields[7] = authority;
    // This proxy passes trailers on (gRPC servers ask for this).
    fields.push('te', 'trailers');
    const r = new H2Request(c, fields, !body, c.used);
    c.begin(r);
    return r;
  }

  private startSweeper(): void {
    if (this.sweeper !== null) return;
    this.sweeper = setInterval(() => {
      const cutoff = Date.now() - this.o.idleMs;
      for (const [key, c] of this.conns) {
        if (c.open === 0 && c.idleSince < cutoff) {
          this.conns.delete(key);
          c.goaway(E.NoError);
        }
      }
      if (this.conns.size === 0 && this.sweeper !== null) {
        clearInterval(this.sweeper);
        this.sweeper = null;
      }
    }, Math.min(1000, this.o.idleMs));
    this.sweeper.unref();
  }

  destroy(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const c of this.conns.values()) c.destroy(new H2Error(E.Cancel, 'the proxy is closing'));
    this.conns.clear();
  }
}
