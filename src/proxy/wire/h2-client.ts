// The client side of HTTP/2 cleartext (the inbound sidecar to an app that serves h2c, gRPC servers
// among them): one session per app address, a stream per request, each presented as the same
// Upstream the HTTP/1.1 client gives, so relay and the inbound path run unchanged.
import http2 from 'node:http2';
import { EventEmitter } from 'node:events';
import type { Upstream, UpstreamRequest, UpstreamResponse } from './h1-client.js';
import { MAX_HEAD } from './h1-parse.js';
import { flatHeaders, h2Headers } from './h2-headers.js';
import { CONN_WINDOW, WINDOW } from './mux-frames.js';
import { isGrpc } from './grpc-status.js';
import net from 'node:net';
import type { TcpStats } from '../metrics.js';

/** What one app session may make Node hold, in MB (frames, headers, data not yet read). */
const SESSION_MEMORY_MB = 8;

const REQ = Symbol('mesh.h2c');
type Carried = http2.ClientHttp2Stream & { [REQ]?: H2Request };
type Session = http2.ClientHttp2Session & { open: number; idleSince: number; key: string };

function errorWith(code: string, message: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(message);
  e.code = code;
  return e;
}

export class H2Response extends EventEmitter implements UpstreamResponse {
  readonly statusMessage = '';
  trailers: string[] | null = null;

  constructor(readonly statusCode: number, readonly rawHeaders: string[], private readonly st: http2.ClientHttp2Stream) {
    super();
  }

  pause(): void {
    this.st.pause();
  }

  resume(): void {
    this.st.resume();
  }
}

export class H2Request extends EventEmitter implements Upstream {
  source: { resume(): void } | null = null;
  res: H2Response | null = null;
  done = false;
  /** Why the stream is failing (set when it is cancelled): an 'end' after it is not a complete response. */
  err: Error | null = null;
  /** Trailer fields to end the request body with (a stream opened to wait for them). */
  trailers: http2.OutgoingHttpHeaders | null = null;

  constructor(readonly st: http2.ClientHttp2Stream, readonly session: Session, readonly reusedSocket: boolean) {
    super();
  }

  write(chunk: Buffer): boolean {
    if (this.done) return true;
    return this.st.write(chunk);
  }

  end(chunk?: Buffer, trailers?: string[] | null): void {
    if (this.done || this.st.writableEnded) return;
    if (trailers != null && trailers.length > 0) this.trailers = h2Headers(trailers);
    if (chunk !== undefined && chunk.length > 0) this.st.end(chunk);
    else this.st.end();
  }

  destroy(err?: Error): void {
    if (this.done) return;
    this.err = err ?? errorWith('ECONNRESET', 'request cancelled');
    this.st.close(http2.constants.NGHTTP2_CANCEL);
  }

  failed(err: Error): void {
    // A stream cancelled because its session never connected carries the socket's error (ECONNREFUSED): a connect failure.
    const cause = (err as { cause?: unknown }).cause;
    this.err ??= cause instanceof Error ? cause : err;
  }

  closed(): void {
    this.session.open--;
    this.session.idleSince = Date.now();
    if (this.done) return;
    this.done = true;
    if (this.res !== null) {
      this.res.emit('aborted');
      return;
    }
    const rst = this.st.rstCode;
    // A stream the app refused before reading it (at its stream limit): nothing was processed.
    const err = this.err ?? (rst === http2.constants.NGHTTP2_REFUSED_STREAM
      ? errorWith('ECONNRESET', 'the app refused the stream')
      : errorWith('ECONNRESET', `the app reset the stream (HTTP/2 error ${rst ?? 'unknown'})`));
    this.emit('error', err);
  }
}

function onResponse(this: Carried, headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader): void {
  const r = this[REQ]!;
  const res = new H2Response(Number(headers[':status']), flatHeaders(headers), this);
  r.res = res;
  r.emit('response', res);
}

function onTrailers(this: Carried, headers: http2.IncomingHttpHeaders): void {
  const res = this[REQ]!.res;
  if (res !== null) res.trailers = flatHeaders(headers);
}

function onWantTrailers(this: Carried): void {
  // Without trailers Node ends the stream with an empty DATA frame.
  this.sendTrailers(this[REQ]!.trailers ?? {});
}

function onData(this: Carried, chunk: Buffer): void {
  this[REQ]!.res?.emit('data', chunk);
}

function onEnd(this: Carried): void {
  const r = this[REQ]!;
  if (r.done || r.res === null || r.err !== null) return;
  r.done = true;
  r.res.emit('end');
}

function onDrain(this: Carried): void {
  this[REQ]!.source?.resume();
}

function onError(this: Carried, err: Error): void {
  this[REQ]!.failed(err);
}

function ignore(): void {}

function onClose(this: Carried): void {
  this[REQ]!.closed();
}

export interface H2PoolOptions {
  /** A session with no streams closes after this long. */
  idleMs: number;
  tcp?: TcpStats;
}

/** One HTTP/2 session per app address; the app's SETTINGS_MAX_CONCURRENT_STREAMS bounds it (Node queues past it). */
export class H2Pool {
  private readonly sessions = new Map<string, Session>();
  private sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly o: H2PoolOptions) {}

  private session(host: string, port: number): Session {
    const key = `${host}:${port}`;
    const have = this.sessions.get(key);
    if (have !== undefined && !have.closed && !have.destroyed) return have;
    const s = http2.connect(`http://${key}`, {
      settings: { enablePush: false, maxHeaderListSize: MAX_HEAD, initialWindowSize: WINDOW },
      maxSessionMemory: SESSION_MEMORY_MB,
      createConnection: () => {
        const sock = net.connect(port, host);
        // Window updates and small requests go out at once, not after a delayed ACK.
        sock.setNoDelay(true);
        this.o.tcp?.track(sock);
        return sock;
      },
    }) as Session;
    s.open = 0;
    s.idleSince = Date.now();
    s.key = key;
    // The connection's window as mesh/1's (HTTP/2 starts it at 64 KiB: one round trip per 64 KiB of a big message).
    s.once('connect', () => s.setLocalWindowSize(CONN_WINDOW));
    // Its streams fail with its error (as their cause).
    s.on('error', ignore);
    s.on('close', () => {
      if (this.sessions.get(key) === s) this.sessions.delete(key);
    });
    s.on('goaway', () => {
      if (this.sessions.get(key) === s) this.sessions.delete(key);
    });
    this.sessions.set(key, s);
    this.startSweeper();
    return s;
  }

  request(o: UpstreamRequest): H2Request {
    const s = this.session(o.host, o.port);
    const reused = s.open > 0 || s.idleSince < Date.now();
    const h = h2Headers(o.headers);
    let authority = `${o.host}:${o.port}`;
    let body = false;
    let grpc = false;
    const raw = o.headers;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!;
      if (n.length === 4 && n.toLowerCase() === 'host') authority = raw[i + 1]!;
      else if (n.length === 17 && n.toLowerCase() === 'transfer-encoding') body = true;
      else if (n.length === 14 && n.toLowerCase() === 'content-length' && raw[i + 1] !== '0') body = true;
      else if (n.length === 12 && n.toLowerCase() === 'content-type') grpc = isGrpc(raw[i + 1]);
    }
    // A body that may end with trailers (from HTTP/1.1's chunked, or mesh/1) keeps the stream open for them; a
    // gRPC client sends none, so its calls end with their last DATA frame.
    const trailing = body && !grpc;
    h[':method'] = o.method;
    h[':path'] = o.path;
    h[':authority'] = authority;
    h[':scheme'] = 'http';
    // This proxy passes trailers on (gRPC servers ask for this).
    h.te = 'trailers';
    const st = s.request(h, { endStream: !body, waitForTrailers: trailing }) as Carried;
    const r = new H2Request(st, s, reused);
    s.open++;
    st[REQ] = r;
    st.on('response', onResponse);
    st.on('trailers', onTrailers);
    st.on('data', onData);
    st.on('end', onEnd);
    st.on('drain', onDrain);
    if (trailing) st.on('wantTrailers', onWantTrailers);
    st.on('error', onError);
    st.on('close', onClose);
    return r;
  }

  private startSweeper(): void {
    if (this.sweeper !== null) return;
    this.sweeper = setInterval(() => {
      const cutoff = Date.now() - this.o.idleMs;
      for (const [key, s] of this.sessions) {
        if (s.open === 0 && s.idleSince < cutoff) {
          this.sessions.delete(key);
          s.close();
        }
      }
      if (this.sessions.size === 0 && this.sweeper !== null) {
        clearInterval(this.sweeper);
        this.sweeper = null;
      }
    }, Math.min(1000, this.o.idleMs));
    this.sweeper.unref();
  }

  destroy(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const s of this.sessions.values()) s.destroy();
    this.sessions.clear();
  }
}
