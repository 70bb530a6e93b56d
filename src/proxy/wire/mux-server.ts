// mesh/1, server side (the inbound sidecar): a peer proxy's streams become requests to the handlers.
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { STATUS_TEXT } from './status-text.js';
import { Head, parseRequestHead, ParseError } from './h1-parse.js';
import { Req, type BodyFlow, type H1Handlers, type Res } from './h1-server.js';
import { T, END, ACK, EMPTY, MAX_HEAD_FRAME, MAX_STREAMS, Rst, Cap, UPGRADE, FrameReader, FrameWriter, headEndOf, headText, parseTrailers, trailerText, type FrameSink } from './mux-frames.js';
import { ConnFlow, Receiver, Sender, type Drainable } from './mux-flow.js';
import { Tunnel, type TunnelHost, type UpgradeDown } from './mux-tunnel.js';
import { tunnels } from './h1-headers.js';
import { ERROR_HEADER, errorHeader } from '../errors.js';

/** Takes a tunnel stream (CONNECT `authority`) from the peer on `sock`: accept or refuse it. */
export type TunnelHandler = (t: Tunnel, authority: string, sock: net.Socket) => void;
/** Takes an upgrade stream (UPGRADE): the request, and where its answer goes (the connection is `res.socket`). */
export type UpgradeStreamHandler = (req: Req, res: UpgradeDown) => void;

/** What a mesh/1 connection serves besides requests; a connection announces upgrades only when it takes them. */
export interface MuxHandlers extends H1Handlers {
  tunnel?: TunnelHandler;
  upgradeStream?: UpgradeStreamHandler;
}

class ServerStream implements BodyFlow, Drainable {
  req: Req | null = null;
  res: MuxRes | null = null;
  readonly tx: Sender;
  readonly rx: Receiver;
  /** Request body bytes its Content-Length still allows (-1: not given). */
  remaining = -1;
  requestDone = false;
  /** A CONNECT stream: its frames go to the tunnel (see mux-tunnel.ts). */
  tunnel: Tunnel | null = null;

  constructor(readonly conn: MuxServerConn, readonly id: number) {
    this.tx = new Sender(conn.flow, id, this);
    this.rx = new Receiver(conn.flow, id);
  }

  drained(): void {
    this.res?.emit('drain');
  }

  /** A response's tail that waited on a window is out: the stream may be over. */
  flushed(): void {
    this.conn.responseDone(this);
  }

  get sock(): net.Socket {
    return this.conn.sock;
  }

  pauseBody(): void {
    this.rx.pause();
  }

  resumeBody(): void {
    this.rx.resume();
  }
}

/** A response sent back as HEADERS and DATA frames on its stream; on an upgrade stream, a 101 makes the stream a tunnel. */
class MuxRes extends EventEmitter implements UpgradeDown {
  statusCode = 200;
  headersSent = false;
  writableFinished = false;
  destroyed = false;
  shouldKeepAlive = true;
  bodyBytes = 0;
  private head = '';
  private noBody = false;
  /** What the stream became after a 101. */
  private tunnel: Tunnel | null = null;

  constructor(private readonly st: ServerStream, private readonly method: string) {
    super();
  }

  get socket(): net.Socket {
    return this.st.conn.sock;
  }

  writeHead(status: number, reason: string | undefined, raw: string[]): this {
    this.statusCode = status;
    this.noBody = status < 200 || status === 204 || status === 304 || this.method === 'HEAD';
    this.head = headText(`HTTP/1.1 ${status} ${reason || STATUS_TEXT[status] || ''}\r\n`, raw);
    return this;
  }

  /** Sends the head; false (and the stream reset) when it is too large for a head frame. */
  private sendHead(flags: number): boolean {
    this.headersSent = true;
    if (this.head.length > MAX_HEAD_FRAME) {
      this.destroy();
      return false;
    }
    this.st.conn.w.head(flags, this.st.id, this.head);
    return true;
  }

  write(chunk: Buffer): boolean {
    if (this.destroyed || this.writableFinished) return false;
    if (!this.headersSent && !this.sendHead(0)) return false;
    if (this.noBody || chunk.length === 0) return true;
    this.bodyBytes += chunk.length;
    return this.st.tx.data(chunk, false);
  }

  end(chunk?: Buffer, trailers?: string[] | null): void {
    if (this.destroyed || this.writableFinished) return;
    const body = this.noBody || chunk === undefined ? EMPTY : chunk;
    this.bodyBytes += body.length;
    // Trailers go to a peer that takes them (gRPC's status lives there); the previous version's never see them.
    const text = trailers != null && trailers.length > 0 && !this.noBody && this.st.conn.flow.peerTrailers ? trailerText(trailers) : null;
    if (text !== null && text.length > MAX_HEAD_FRAME) return this.destroy();
    const trailer = text === null ? null : Buffer.from(text, 'latin1');
    if (!this.headersSent) {
      if (!this.sendHead(body.length === 0 && trailer === null ? END : 0)) return;
      if (body.length > 0 || trailer !== null) this.st.tx.data(body, true, trailer);
    } else this.st.tx.data(body, true, trailer);
    this.writableFinished = true;
    this.st.conn.responseDone(this.st);
    this.emit('close');
  }

  destroy(): void {
    if (this.tunnel !== null) return this.tunnel.reset();
    if (this.destroyed || this.writableFinished) return;
    this.st.conn.w.frame(T.Reset, 0, this.st.id, null);
    this.st.conn.reset(this.st);
  }

  switchProtocols(reason: string, raw: string[], far: net.Socket | Tunnel, leftover: Buffer | null): void {
    // Tunnel to tunnel is not a join this side makes: its upstream is the app's socket.
    if (this.destroyed || this.headersSent || far instanceof Tunnel) return void far.destroy();
    this.statusCode = 101;
    this.headersSent = true;
    // The exchange is over as a response: from here on the tunnel's end is its end.
    this.writableFinished = true;
    const t = (this.tunnel = this.st.conn.switched(this.st, headText(`HTTP/1.1 101 ${reason || 'Switching Protocols'}\r\n`, raw)));
    t.once('close', () => this.emit('close'));
    t.attach(far, leftover);
  }

  aborted(): void {
    if (this.destroyed || this.writableFinished) return;
    this.destroyed = true;
    this.emit('close');
  }
}

/** A peer proxy's connection to this inbound listener. */
export class MuxServerConn implements FrameSink, TunnelHost {
  readonly w: FrameWriter;
  readonly flow: ConnFlow;
  private readonly reader: FrameReader;
  private readonly streams = new Map<number, ServerStream>();
  private lastId = 0;

  constructor(readonly sock: net.Socket, private readonly h: MuxHandlers) {
    this.w = new FrameWriter(sock);
    this.flow = new ConnFlow(this.w, Cap.Trailers | (h.upgradeStream ? Cap.Upgrade : 0));
    this.reader = new FrameReader(this);
    sock.setNoDelay(true);
    sock.setTimeout(60_000);
    sock.on('data', (chunk: Buffer) => {
      try {
        this.reader.push(chunk);
      } catch {
        sock.destroy();
      }
    });
    sock.on('timeout', () => {
      if (this.streams.size === 0) sock.destroy();
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      for (const st of [...this.streams.values()]) this.reset(st);
    });
  }

  onFrame(type: number, flags: number, id: number, payload: Buffer): void {
    const flow = this.flow;
    if (!flow.peerKnown) flow.hello(type === T.Settings, payload);
    if (type === T.Ping) {
      if ((flags & ACK) !== 0) return;
      // Pings while our answers pile up unread: a flood (HTTP/2's CVE-2019-9512), not a liveness check.
      if (this.w.congested) this.sock.destroy();
      else this.w.pingAck(payload);
      return;
    }
    let st = this.streams.get(id);
    if (type === T.Data) {
      const n = payload.length;
      if (!flow.received(n)) {
        // A peer of this version promised to keep to the window; one of the previous version loses the stream.
        if (flow.peerNew || st === undefined) {
          this.sock.destroy();
          return;
        }
        flow.release(n);
        return this.refuse(st, Rst.Protocol, 'data past the connection window');
      }
      if (st?.tunnel) return st.tunnel.onFrame(type, flags, payload);
      if (st === undefined || st.requestDone) return flow.release(n);
      if (!st.rx.received(n)) return this.refuse(st, Rst.Protocol, 'data past the stream window');
      const req = st.req!;
      if (n > 0) {
        if (st.remaining >= 0) {
          st.remaining -= n;
          // The app gets the body under the Content-Length it was told: more would be a second request.
          if (st.remaining < 0) return this.refuse(st, Rst.Protocol, 'request body longer than its Content-Length');
        } else if (!req.chunked) return this.refuse(st, Rst.Protocol, 'request body without Content-Length or Transfer-Encoding');
        req.push(payload);
        st.rx.consumed(n);
      }
      if (flags & END) this.requestEnd(st);
      return;
    }
    if (type === T.Trailers) {
      // Request trailers end the body and go on with it.
      if (st?.tunnel) return st.tunnel.onFrame(type, flags, payload);
      if (st === undefined || st.requestDone) return;
      let trailers: string[];
      try {
        trailers = parseTrailers(payload);
      } catch (err) {
        return this.refuse(st, Rst.Protocol, (err as Error).message);
      }
      if ((flags & END) === 0) return this.refuse(st, Rst.Protocol, 'trailers without END');
      return this.requestEnd(st, trailers);
    }
    if (type === T.Headers && st === undefined) {
      // Ids only grow: an old id is a stream already over, whose late frames are dropped.
      if (id <= this.lastId || (id & 1) === 0) return;
      this.lastId = id;
      if (this.streams.size >= MAX_STREAMS) {
        // Refused before it was read: the peer may send it elsewhere.
        this.w.frame(T.Reset, 0, id, RST_REFUSED);
        return;
      }
      st = new ServerStream(this, id);
      this.streams.set(id, st);
      this.begin(st, flags, payload);
      return;
    }
    if (type === T.Window && id === 0) {
      if (!flow.opened(payload.readUInt32BE(0))) this.sock.destroy();
      return;
    }
    if (st === undefined) return;
    if (st.tunnel) return st.tunnel.onFrame(type, flags, payload);
    if (type === T.Window) {
      if (!st.tx.opened(payload.readUInt32BE(0))) return this.refuse(st, Rst.Protocol, 'a window past 2^31-1');
      this.maybeClose(st);
    } else if (type === T.Reset) {
      this.reset(st);
    }
  }

  private begin(st: ServerStream, flags: number, payload: Buffer): void {
    let h: Head;
    try {
      h = parseRequestHead(payload, headEndOf(payload));
    } catch (err) {
      const e = err instanceof ParseError ? err : new ParseError(400, (err as Error).message);
      const msg = `${e.message}\n`;
      this.w.head(0, st.id, headText(`HTTP/1.1 ${e.status} ${STATUS_TEXT[e.status] ?? ''}\r\n`, ['content-type', 'text/plain', 'content-length', String(msg.length), ERROR_HEADER, errorHeader(e.code, e.message)]));
      this.w.frame(T.Data, END, st.id, Buffer.from(msg, 'latin1'));
      this.forget(st);
      return;
    }
    if (h.method === 'CONNECT' && this.h.tunnel !== undefined) {
      st.tunnel = new Tunnel(this, st.id, false);
      if (flags & END) st.tunnel.peerEnded();
      this.h.tunnel(st.tunnel, h.url, this.sock);
      return;
    }
    const upgrade = (flags & UPGRADE) !== 0 && this.h.upgradeStream !== undefined;
    // An upgrade stream stays open for the upgraded bytes: it must be an upgrade the proxy makes, with no body.
    if (upgrade && (!tunnels(h) || h.chunked || h.contentLength > 0 || (flags & END) !== 0)) return this.refuse(st, Rst.Protocol, 'not an upgrade request');
    const req = new Req(h, st);
    st.req = req;
    st.remaining = h.contentLength;
    const res = new MuxRes(st, h.method);
    st.res = res;
    if (flags & END) this.requestEnd(st);
    if (upgrade) this.h.upgradeStream!(req, res);
    else this.h.request(req, res);
  }

  /** An upgrade stream's 101: the head goes out and the stream is a tunnel from here on (no DATA flowed before it). */
  switched(st: ServerStream, head: string): Tunnel {
    st.tx.close();
    st.rx.close();
    const t = Tunnel.switched(this, st.id, false);
    st.tunnel = t;
    this.w.head(0, st.id, head);
    return t;
  }

  private requestEnd(st: ServerStream, trailers: string[] | null = null): void {
    if (st.remaining > 0) return this.refuse(st, Rst.Protocol, 'request body shorter than its Content-Length');
    st.requestDone = true;
    st.req!.finish(trailers);
    this.maybeClose(st);
  }

  private refuse(st: ServerStream, code: Rst, why: string): void {
    this.w.frame(T.Reset, 0, st.id, Buffer.from(`${String.fromCharCode(code)}${why}`, 'latin1'));
    this.reset(st);
  }

  responseDone(st: ServerStream): void {
    this.maybeClose(st);
  }

  /** A stream is over when its response is ended and sent (the window may hold its tail back). */
  private maybeClose(st: ServerStream): void {
    if (!st.res?.writableFinished || !st.tx.idle || this.streams.get(st.id) !== st) return;
    if (!st.requestDone) {
      // The rest of the request body is not wanted: the peer stops sending on the reset.
      st.req!.discard();
      this.w.frame(T.Reset, 0, st.id, null);
    }
    this.forget(st);
  }

  private forget(st: ServerStream): void {
    this.streams.delete(st.id);
    st.tx.close();
    st.rx.close();
  }

  forgetTunnel(id: number): void {
    const st = this.streams.get(id);
    if (st !== undefined) this.forget(st);
  }

  reset(st: ServerStream): void {
    st.tunnel?.fail(new Error('connection closed'));
    this.forget(st);
    const req = st.req;
    if (req !== null && !req.complete) req.aborted = true;
    st.res?.aborted();
  }
}

const RST_REFUSED = Buffer.from([Rst.Refused]);

export function serveMux(sock: net.Socket, h: MuxHandlers): void {
  new MuxServerConn(sock, h);
}
