// mesh/1, client side (the outbound sidecar): sessions per peer proxy, a stream per request.
import { EventEmitter } from 'node:events';
import tls from 'node:tls';
import { Head, parseResponseHead } from './h1-parse.js';
import type { Upstream, UpstreamResponse } from './h1-client.js';
import type { TcpStats } from '../metrics.js';
import { ALPN, T, END, ACK, EMPTY, MAX_HEAD_FRAME, PING_LEN, Rst, Cap, UPGRADE, FrameReader, FrameWriter, headEndOf, headText, parseTrailers, resetError, trailerText, type FrameSink } from './mux-frames.js';
import { ConnFlow, Receiver, Sender } from './mux-flow.js';
import { Tunnel, type TunnelHost } from './mux-tunnel.js';
import { connectFault, MeshFault } from '../errors.js';

export interface TlsOptions {
  servername: string;
  checkServerIdentity: (host: string, cert: tls.PeerCertificate) => Error | undefined;
  secureContext: tls.SecureContext;
}

export class MuxResponse extends EventEmitter implements UpstreamResponse {
  trailers: string[] | null = null;

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

  /** `upgrade`: an upgrade stream (UPGRADE): a 101 makes it a tunnel, emitted with 'upgrade'. */
  constructor(readonly session: MuxSession, readonly id: number, private readonly head: string, readonly reusedSocket: boolean, private readonly noBody: boolean, private readonly upgrade = false) {
    super();
    this.tx = new Sender(session.flow, id, this);
    this.rx = new Receiver(session.flow, id);
  }

  write(chunk: Buffer): boolean {
    if (this.done || this.sent) return true;
    if (!this.headSent) this.sendHead();
    return this.tx.data(chunk, false);
  }

  /** The head without END: a streamed body (or an upgraded connection's bytes) follows, and the peer may answer before it ends. */
  sendHead(flags = 0): void {
    this.headSent = true;
    this.session.w.head(flags, this.id, this.head);
  }

  /** Request trailers go to a peer that takes them (one of the previous version drops them unread). */
  end(chunk?: Buffer, trailers?: string[] | null): void {
    if (this.done || this.sent) return;
    this.sent = true;
    const text = trailers != null && trailers.length > 0 && this.session.flow.peerTrailers ? trailerText(trailers) : null;
    if (text !== null && text.length > MAX_HEAD_FRAME) return this.destroy(new MeshFault('protocol', 'request trailers too large for mesh/1'));
    const trailer = text === null ? null : Buffer.from(text, 'latin1');
    if (!this.headSent) {
      this.headSent = true;
      const empty = (chunk === undefined || chunk.length === 0) && trailer === null;
      this.session.w.head(empty ? END : 0, this.id, this.head);
      if (empty) return;
    }
    this.tx.data(chunk ?? EMPTY, true, trailer);
  }

  drained(): void {
    this.source?.resume();
  }

  destroy(err?: Error): void {
    if (this.done) return;
    this.session.w.frame(T.Reset, 0, this.id, null);
    this.fail(err ?? resetError('request cancelled'));
  }

  fail(err: Error): void {
    if (this.done) return;
    this.over();
    if (this.res === null) this.emit('error', err);
    else this.res.emit('aborted');
  }

  private over(): void {
    this.done = true;
    this.session.streams.delete(this.id);
    this.tx.close();
    this.rx.close();
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
      if (h.status < 200) {
        if (h.status === 101 && this.upgrade && (flags & END) === 0) this.switched(h);
        return;
      }
      this.remaining = this.noBody || h.status === 204 || h.status === 304 ? 0 : h.contentLength;
      this.res = new MuxResponse(h.status, h.reason, h.raw, this.rx);
      this.emit('response', this.res);
      if (flags & END) this.finish();
    } else if (type === T.Data) {
      if (this.res === null) return this.protocolError('data before the response head');
      if (payload.length > 0) {
        if (!this.rx.received(payload.length)) return this.protocolError('data past the stream window');
        if (this.remaining >= 0) {
          this.remaining -= payload.length;
          if (this.remaining < 0) return this.protocolError('more data than Content-Length');
        }
        this.res.emit('data', payload);
        this.rx.consumed(payload.length);
      }
      if (flags & END) this.finish();
    } else if (type === T.Trailers) {
      if (this.res === null) return this.protocolError('trailers before the response head');
      if ((flags & END) === 0) return this.protocolError('trailers without END');
      try {
        this.res.trailers = parseTrailers(payload);
      } catch (err) {
        return this.protocolError((err as Error).message);
      }
      this.finish();
    } else if (type === T.Window) {
      if (!this.tx.opened(payload.readUInt32BE(0))) this.protocolError('a window past 2^31-1');
    } else if (type === T.Reset) {
      // The peer refused the stream before reading it: nothing was processed.
      this.fail(payload.length > 0 && payload[0] === Rst.Refused
        ? new MeshFault('refused', 'peer refused the stream (at its stream limit)')
        : resetError('stream reset by the peer'));
    }
  }

  /** The peer switched protocols: the stream is a tunnel from here on ('upgrade': the 101's head, the tunnel). */
  private switched(h: Head): void {
    this.over();
    const t = Tunnel.switched(this.session, this.id, true);
    this.session.streams.set(this.id, t);
    this.emit('upgrade', new MuxResponse(h.status, h.reason, h.raw, this.rx), t, null);
  }

  private finish(): void {
    if (this.remaining > 0) return this.protocolError('response shorter than its Content-Length');
    this.over();
    this.res!.emit('end');
    // A response that came before the request was all sent: tell the peer to stop reading.
    if (!this.sent) this.session.w.frame(T.Reset, 0, this.id, null);
  }

  private protocolError(why: string): void {
    this.session.w.frame(T.Reset, 0, this.id, RST_PROTOCOL);
    this.fail(new MeshFault('protocol', `bad response from the peer: ${why}`));
  }
}

const RST_PROTOCOL = Buffer.from([Rst.Protocol]);

function chunkedBody(headers: string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i]!;
    if (n.length === 17 && n.toLowerCase() === 'transfer-encoding') return true;
  }
  return false;
}

/** A request refused before it had a stream: its 'error' comes once the caller listens. */
class Refused extends EventEmitter implements Upstream {
  readonly reusedSocket = false;
  source: { resume(): void } | null = null;

  constructor(err: MeshFault) {
    super();
    process.nextTick(emitError, this, err);
  }

  write(): boolean {
    return true;
  }

  end(): void {}
  destroy(): void {}
}

function emitError(e: EventEmitter, err: Error): void {
  e.emit('error', err);
}

const UPGRADE_EVENTS = ['response', 'upgrade', 'error'] as const;

/**
 * An upgrade on a session whose peer has not said yet (by its first frame) whether it takes them: its stream opens
 * then, in order with the session's other streams, and its events come through this object.
 */
class PendingUpgrade extends EventEmitter implements Upstream {
  readonly reusedSocket = false;
  source: { resume(): void } | null = null;
  private stream: Upstream | null = null;
  private over = false;

  constructor(private readonly open: () => Upstream) {
    super();
  }

  go(): void {
    if (this.over) return;
    const s = (this.stream = this.open());
    for (const ev of UPGRADE_EVENTS) s.on(ev, (...args: unknown[]) => this.emit(ev, ...args));
  }

  fail(err: Error): void {
    if (this.over || this.stream !== null) return;
    this.over = true;
    this.emit('error', err);
  }

  write(): boolean {
    return true;
  }

  end(): void {}

  destroy(err?: Error): void {
    if (this.stream !== null) this.stream.destroy(err);
    else this.fail(err ?? resetError('request cancelled'));
  }
}

/** One mutual-TLS connection to a peer proxy and the streams on it. */
export class MuxSession implements FrameSink, TunnelHost {
  readonly streams = new Map<number, ClientStream | Tunnel>();
  readonly w: FrameWriter;
  readonly flow: ConnFlow;
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
  /** Upgrades waiting for the peer's first frame. */
  private pending: PendingUpgrade[] | null = null;

  constructor(readonly sock: tls.TLSSocket, readonly key: string, readonly secureContext: tls.SecureContext, private readonly onClose: (s: MuxSession) => void) {
    this.w = new FrameWriter(sock);
    // A client takes trailers; no peer opens streams to it, so it takes no upgrades.
    this.flow = new ConnFlow(this.w, Cap.Trailers);
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
        this.close(new MeshFault('protocol', (err as Error).message));
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
        this.w.frame(T.Ping, 0, 0, PING_PAYLOAD);
      }
    } else if (now - this.pingAt >= pingTimeoutMs) {
      this.close(new MeshFault('peer_gone', `peer stopped answering (no reply to a ping in ${pingTimeoutMs} ms)`));
    }
  }

  request(method: string, path: string, headers: string[]): Upstream {
    const head = headText(`${method} ${path} HTTP/1.1\r\n`, headers);
    if (head.length > MAX_HEAD_FRAME) return new Refused(new MeshFault('head_too_large', `request head of ${head.length} bytes is over the limit of ${MAX_HEAD_FRAME}`));
    const id = this.nextId;
    this.nextId += 2;
    const s = new ClientStream(this, id, head, this.connected, method === 'HEAD');
    this.streams.set(id, s);
    // A streamed body (gRPC's calls) may wait on the response: the head goes now, in this turn's write.
    if (chunkedBody(headers)) s.sendHead();
    return s;
  }

  /**
   * An upgrade request (UPGRADE in mux-frames.ts): an ordinary response, or 'upgrade' with the 101 and the tunnel the
   * stream became. Sent once the peer is known to take it; a peer of an older version refuses it with a clear error.
   */
  upgrade(path: string, headers: string[]): Upstream {
    const head = headText(`GET ${path} HTTP/1.1\r\n`, headers);
    if (head.length > MAX_HEAD_FRAME) return new Refused(new MeshFault('head_too_large', `request head of ${head.length} bytes is over the limit of ${MAX_HEAD_FRAME}`));
    const open = () => this.openUpgrade(head);
    if (this.flow.peerKnown) return open();
    if (this.pending !== null && this.pending.length >= this.flow.peerMaxStreams) return new Refused(new MeshFault('refused', `${this.pending.length} upgrades already wait for peer ${this.key} to answer`));
    const p = new PendingUpgrade(open);
    (this.pending ??= []).push(p);
    // This version's peer sends SETTINGS first; one of the oldest sends nothing unasked, but answers a ping.
    if (this.pending.length === 1) this.w.frame(T.Ping, 0, 0, PING_PAYLOAD);
    return p;
  }

  private openUpgrade(head: string): Upstream {
    if (!this.flow.peerUpgrades) {
      return new Refused(new MeshFault('protocol', `the peer sidecar ${this.key} does not carry upgrades (WebSocket) over ${ALPN}: it is of an older version; upgrade it to this version`));
    }
    if (!this.usable) return new Refused(new MeshFault('refused', `no room for another stream to peer ${this.key}`));
    const id = this.nextId;
    this.nextId += 2;
    const s = new ClientStream(this, id, head, this.connected, false, true);
    this.streams.set(id, s);
    s.sendHead(UPGRADE);
    return s;
  }

  /** A tunnel stream (see mux-tunnel.ts): CONNECT `authority`, then bytes both ways. */
  tunnel(authority: string, headers: string[]): Tunnel {
    const id = this.nextId;
    this.nextId += 2;
    const t = new Tunnel(this, id, true);
    this.streams.set(id, t);
    t.connect(headText(`CONNECT ${authority} HTTP/1.1\r\n`, ['host', authority, ...headers]));
    return t;
  }

  forgetTunnel(id: number): void {
    this.streams.delete(id);
  }

  /** Out of stream ids: new requests go to a fresh connection, this one ends when idle. */
  get exhausted(): boolean {
    return this.nextId > 0x7ffffff0;
  }

  /** Takes another stream: open, not replaced, under the peer's stream limit. */
  get usable(): boolean {
    return !this.closed && !this.draining && !this.exhausted && this.streams.size < this.flow.peerMaxStreams;
  }

  onFrame(type: number, flags: number, id: number, payload: Buffer): void {
    const flow = this.flow;
    if (!flow.peerKnown) {
      flow.hello(type === T.Settings, payload);
      const pending = this.pending;
      this.pending = null;
      if (pending !== null) for (const p of pending) p.go();
    }
    if (type === T.Data && payload.length > 0 && !flow.received(payload.length)) {
      // A peer of this version promised to keep to the window; one of the previous version loses the stream.
      if (flow.peerNew) return this.close(new MeshFault('protocol', 'peer overran the connection window'));
      flow.release(payload.length);
      this.streams.get(id)?.destroy(new MeshFault('protocol', 'peer overran the connection window'));
      return;
    }
    const s = id === 0 ? undefined : this.streams.get(id);
    if (s === undefined) {
      if (type === T.Data) flow.release(payload.length);
      else if (type === T.Ping && (flags & ACK) === 0) {
        // Pings while our answers pile up unread: a flood, not a liveness check.
        if (this.w.congested) this.close(new MeshFault('protocol', 'peer floods pings without reading the answers'));
        else this.w.pingAck(payload);
      }
      else if (type === T.Window && id === 0 && !flow.opened(payload.readUInt32BE(0))) this.close(new MeshFault('protocol', 'peer opened the connection window past 2^31-1'));
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
    const pending = this.pending;
    this.pending = null;
    if (pending !== null) for (const p of pending) p.fail(err);
  }
}

const PING_PAYLOAD = Buffer.alloc(PING_LEN);

export interface SessionPoolOptions {
  /** Sessions with no streams close after this long. */
  idleMs: number;
  /** A session with streams that has read nothing this long is pinged (default 10 s)... */
  pingAfterMs?: number;
  /** ...and closed if no reply comes within this (default 5 s). */
  pingTimeoutMs?: number;
  tcp?: TcpStats;
}

/**
 * Sessions to one peer beyond the first, when each is at the peer's stream limit: together they
 * carry more than an endpoint's in-flight limit (balancer.ts), so this is a bound, not a throttle.
 */
const MAX_SESSIONS_PER_PEER = 8;

/** Sessions per peer address, opened on first use and when the open ones are full. */
export class SessionPool {
  private readonly sessions = new Map<string, MuxSession[]>();
  private readonly draining = new Set<MuxSession>();
  private sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly o: SessionPoolOptions) {}

  request(host: string, port: number, t: TlsOptions, method: string, path: string, headers: string[], tcp?: TcpStats): Upstream {
    const s = this.session(host, port, t, tcp);
    return s instanceof MeshFault ? new Refused(s) : s.request(method, path, headers);
  }

  /** An upgrade request (see MuxSession.upgrade) to the peer at host:port. */
  upgrade(host: string, port: number, t: TlsOptions, path: string, headers: string[], tcp?: TcpStats): Upstream {
    const s = this.session(host, port, t, tcp);
    return s instanceof MeshFault ? new Refused(s) : s.upgrade(path, headers);
  }

  /** A tunnel to `authority` through the peer at host:port; a failure to get a session comes as its 'error'. */
  tunnel(host: string, port: number, t: TlsOptions, authority: string, headers: string[], tcp?: TcpStats): Tunnel | MeshFault {
    const s = this.session(host, port, t, tcp);
    return s instanceof MeshFault ? s : s.tunnel(authority, headers);
  }

  /** A session to the peer with room for another stream, opened when none has. */
  private session(host: string, port: number, t: TlsOptions, tcp?: TcpStats): MuxSession | MeshFault {
    const key = `${host}:${port}`;
    let list = this.sessions.get(key);
    if (list === undefined) this.sessions.set(key, (list = []));
    let s: MuxSession | undefined;
    for (let i = 0; i < list.length;) {
      const c = list[i]!;
      // A rotated client certificate: new streams go to a session that presents the new one.
      if (c.secureContext !== t.secureContext) {
        this.retire(c);
        continue;
      }
      if (c.usable) {
        s = c;
        break;
      }
      i++;
    }
    if (s === undefined) {
      // Sessions that are closed or out of ids leave the list as they end; full ones stay.
      if (list.length >= MAX_SESSIONS_PER_PEER) {
        return new MeshFault('overloaded', `${list.length} sessions to peer ${key} are at its stream limit`);
      }
      const sock = tls.connect({ host, port, servername: t.servername, checkServerIdentity: t.checkServerIdentity, secureContext: t.secureContext, ALPNProtocols: [ALPN] });
      (tcp ?? this.o.tcp)?.track(sock);
      s = new MuxSession(sock, key, t.secureContext, (gone) => this.forget(gone));
      list.push(s);
      this.startSweeper();
    }
    return s;
  }

  /** Takes no new streams; closes when its last one ends. */
  private retire(s: MuxSession): void {
    if (s.draining) return;
    s.draining = true;
    this.remove(s);
    if (s.streams.size === 0) s.close(resetError('replaced'));
    else this.draining.add(s);
  }

  /** Out of its peer's list (an empty list stays until the sweeper: a caller may hold it). */
  private remove(s: MuxSession): void {
    const list = this.sessions.get(s.key);
    if (list === undefined) return;
    const i = list.indexOf(s);
    if (i >= 0) list.splice(i, 1);
  }

  private forget(s: MuxSession): void {
    this.remove(s);
    this.draining.delete(s);
  }

  private *all(): Generator<MuxSession> {
    for (const list of this.sessions.values()) yield* list;
    yield* this.draining;
  }

  private startSweeper(): void {
    if (this.sweeper !== null) return;
    const pingAfter = this.o.pingAfterMs ?? 10_000;
    const pingTimeout = this.o.pingTimeoutMs ?? 5_000;
    this.sweeper = setInterval(() => {
      const now = Date.now();
      const cutoff = now - this.o.idleMs;
      for (const s of [...this.all()]) {
        s.checkLive(now, pingAfter, pingTimeout);
        if (s.closed) continue;
        if (s.exhausted && !s.draining) this.retire(s);
        // Idle sessions close; so does a draining one whose streams ended by a path that did not close it.
        if (s.streams.size === 0 && (s.draining || s.idleSince < cutoff)) s.close(resetError(s.draining ? 'replaced' : 'idle'));
      }
      for (const [key, list] of this.sessions) if (list.length === 0) this.sessions.delete(key);
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
    for (const s of [...this.all()]) s.close(resetError('proxy shutting down'));
  }
}
