// mesh/1, client side (the outbound sidecar): one session per peer proxy, a stream per request.
import { EventEmitter } from 'node:events';
import tls from 'node:tls';
import { Head, parseResponseHead } from '../h1-parse.js';
import type { Upstream, UpstreamResponse } from '../h1-client.js';
import type { TcpStats } from '../metrics.js';
import { ALPN, T, END, ACK, EMPTY, FrameReader, FrameWriter, headEndOf, headText, resetError, type FrameSink } from './mux-frames.js';
import { Receiver, Sender } from './mux-flow.js';
import { connectFault, MeshFault } from '../errors.js';

export interface TlsOptions {
  servername: string;
  checkServerIdentity: (host: string, cert: tls.PeerCertificate) => Error | undefined;
  secureContext: tls.SecureContext;
}

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
    // Before the handshake is done nothing was sent: the streams may go to another endpoint.
    sock.on('error', (err) => this.close(this.connected ? err : connectFault(err, `peer ${key}`)));
    sock.on('close', () => this.close(this.connected ? resetError('socket hang up') : new MeshFault('connect', `peer ${key} closed the connection during the handshake`)));
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
      this.close(new MeshFault('peer_gone', `peer stopped answering (no reply to a ping in ${pingTimeoutMs} ms)`));
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

