// mesh/1 tunnel streams: a stream opened with a CONNECT head (authority service:port) carries one
// TCP connection between sidecars. After a 200 head its DATA is an opaque byte stream both ways
// under the same stream and connection windows as bodies; END on DATA half-closes one direction
// (the socket's FIN), RESET ends both (an error, or the socket reset). Any other answer to the
// CONNECT refuses the tunnel; a sidecar of the previous version answers 400 (it knows no CONNECT).
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { STATUS_TEXT } from './status-text.js';
import { parseResponseHead } from './h1-parse.js';
import { T, END, EMPTY, Rst, headEndOf, headText, type FrameWriter } from './mux-frames.js';
import { Receiver, Sender, type ConnFlow, type Drainable } from './mux-flow.js';
import { READ_BUF } from './read-buffer.js';
import { MeshFault, type ErrorCode } from '../errors.js';
import type { Res } from './h1-server.js';

/**
 * The client side of an upgrade (an HTTP/1.1 connection, or an upgrade stream on mesh/1): a response writer for
 * any answer but 101, and after a 101 the bytes both ways. Emits 'close' once, when the exchange or the upgraded
 * connection is over.
 */
export interface UpgradeDown extends Res {
  /**
   * Sends the 101 head (`raw`: its fields as they go on) and joins the client to `far`, the upstream's side of the
   * upgraded connection (a socket, or a tunnel stream); `leftover` is what was read from `far` past its head.
   */
  switchProtocols(reason: string, raw: string[], far: net.Socket | Tunnel, leftover: Buffer | null): void;
}

/** The connection a tunnel lives on: its writer, its windows, and its stream table. */
export interface TunnelHost {
  readonly w: FrameWriter;
  readonly flow: ConnFlow;
  /** The stream is over: out of the table (no frame is sent). */
  forgetTunnel(id: number): void;
}

/** The header a tunnel refusal carries its reason in (as HTTP errors carry mesh-proxy-error). */
export const TUNNEL_ERROR = 'mesh-proxy-error';

const RST_PROTOCOL = Buffer.from([Rst.Protocol]);

/** What a refusal's status means, as a stable code (errors.ts). */
function refusalCode(status: number): ErrorCode {
  if (status === 403) return 'denied';
  if (status === 503) return 'overloaded';
  if (status === 504) return 'timeout';
  return 'connect';
}

/**
 * One end of a tunnel. The client end (outbound sidecar) emits 'open' on the peer's 200, or 'error'
 * (a MeshFault) when refused; the server end (inbound sidecar) is answered with accept() or
 * refuse(). Once open, attach() joins it to a socket (the app's connection) and it runs by itself
 * until both directions are closed. Emits 'close' once at the end, with bytesRead (from the peer)
 * and bytesWritten (to the peer) final: what the tcp_* metrics count.
 */
export class Tunnel extends EventEmitter implements Drainable {
  readonly tx: Sender;
  readonly rx: Receiver;
  sock: net.Socket | null = null;
  bytesRead = 0;
  bytesWritten = 0;
  open = false;
  done = false;
  private sentEnd = false;
  private gotEnd = false;
  private headSent = false;
  /** The app socket is corked until this poll's reads are done. */
  corked = false;

  constructor(private readonly host: TunnelHost, readonly id: number, readonly client: boolean) {
    super();
    this.tx = new Sender(host.flow, id, this);
    this.rx = new Receiver(host.flow, id);
  }

  /** The tunnel an upgrade stream becomes after its 101 (no DATA flowed before it: fresh windows are exact). */
  static switched(host: TunnelHost, id: number, client: boolean): Tunnel {
    const t = new Tunnel(host, id, client);
    t.open = true;
    t.headSent = true;
    return t;
  }

  /** Client end: sends the CONNECT head (the stream stays open for DATA). */
  connect(head: string): void {
    this.headSent = true;
    this.host.w.head(0, this.id, head);
  }

  /** Server end: the CONNECT head came with END (the client has nothing to send). */
  peerEnded(): void {
    this.gotEnd = true;
  }

  /** Server end: the app connection is up; the client may send. */
  accept(sock: net.Socket): void {
    if (this.done) {
      sock.destroy();
      return;
    }
    this.host.w.head(0, this.id, 'HTTP/1.1 200 Connection Established\r\n\r\n');
    this.open = true;
    this.attach(sock);
    if (this.gotEnd) sock.end();
  }

  /** Server end: the tunnel is refused with a status and a reason; the stream ends. */
  refuse(status: number, reason: string): void {
    if (this.done) return;
    const why = reason.replace(/[^\x20-\x7e]/g, ' ');
    this.host.w.head(END, this.id, headText(`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? ''}\r\n`, [TUNNEL_ERROR, why, 'content-length', '0']));
    this.over();
  }

  /**
   * Joins the tunnel to a socket: its bytes go out as DATA (first `head`, what was read from it
   * already), the peer's DATA is written to it.
   */
  attach(sock: net.Socket, head: Buffer | null = null): void {
    this.sock = sock;
    sock.setNoDelay(true);
    if (head !== null && head.length > 0) this.fromSocket(head);
    // A socket made with onread (tunnelReads) calls fromSocket itself and emits no 'data'.
    sock.on('data', (chunk: Buffer) => this.fromSocket(chunk));
    const ended = () => {
      this.sentEnd = true;
      this.tx.data(EMPTY, true);
      this.settle();
    };
    // The client may have ended its side while the tunnel was being opened.
    if (sock.readableEnded) ended();
    else sock.on('end', ended);
    sock.on('drain', () => this.rx.resume());
    sock.on('error', () => this.reset());
    // Closed before both directions ended: the peer's side is reset, not left waiting.
    sock.on('close', () => {
      if (!this.sentEnd || !this.gotEnd) this.reset();
    });
  }

  /** Bytes read from the joined socket go out as DATA (a view of a read buffer is fine: frames copy). */
  fromSocket(chunk: Buffer): void {
    this.bytesWritten += chunk.length;
    if (!this.tx.data(chunk, false)) this.sock!.pause();
  }

  drained(): void {
    this.sock?.resume();
  }

  flushed(): void {
    this.settle();
  }

  onFrame(type: number, flags: number, payload: Buffer): void {
    if (this.done) return;
    if (type === T.Data) {
      if (!this.open) return this.protocolError('data before the tunnel was open');
      const n = payload.length;
      if (n > 0) {
        if (this.gotEnd) return this.protocolError('data after the end');
        if (!this.rx.received(n)) return this.protocolError('data past the stream window');
        this.bytesRead += n;
        // The pieces of one read of the mesh connection (TLS hands them on 16 KiB at a time) go to
        // the app in one writev once this poll's reads are done (as FrameWriter batches), not one syscall each.
        const sock = this.sock!;
        if (!this.corked) {
          this.corked = true;
          sock.cork();
          setImmediate(uncorkTunnel, this);
        }
        sock.write(payload);
        // Credited as the socket takes the bytes: past its buffer limit at the uncork, a slow app holds the sender back.
        this.rx.consumed(n);
      }
      if (flags & END) {
        this.gotEnd = true;
        this.sock!.end();
        this.settle();
      }
    } else if (type === T.Window) {
      if (!this.tx.opened(payload.readUInt32BE(0))) this.protocolError('a window past 2^31-1');
    } else if (type === T.Reset) {
      this.over();
      // The peer's connection was reset (or it failed): this one is reset too, not closed cleanly.
      this.sock?.resetAndDestroy();
      this.finish(new MeshFault('upstream', 'tunnel reset by the peer'));
    } else if (type === T.Headers && this.client && !this.open) {
      let status: number;
      let raw: string[];
      try {
        const h = parseResponseHead(payload, headEndOf(payload));
        status = h.status;
        raw = h.raw;
      } catch (err) {
        return this.protocolError((err as Error).message);
      }
      if (status === 200 && (flags & END) === 0) {
        this.open = true;
        this.emit('open');
        return;
      }
      const reason = valueOf(raw, TUNNEL_ERROR);
      this.over();
      if (!(flags & END)) this.host.w.frame(T.Reset, 0, this.id, null);
      // A sidecar of the previous version parses CONNECT as a request with a bad target.
      this.finish(status === 400 || status === 405 || status === 501
        ? new MeshFault('protocol', `the peer sidecar does not carry TCP (it answered CONNECT with ${status}${reason ? `: ${reason}` : ''}); upgrade it to this version`)
        : new MeshFault(refusalCode(status), reason || `the peer refused the tunnel with ${status}`));
    } else if (type === T.Headers || type === T.Trailers) this.protocolError('an unexpected head');
  }

  /** Both directions ended and everything went out: the stream is over without a reset. */
  private settle(): void {
    if (this.done || !this.sentEnd || !this.gotEnd || !this.tx.idle) return;
    this.over();
    this.finish(null);
  }

  /** Ends the stream with a RESET (a socket error, a close before both ends, or the caller's cancel). */
  reset(err?: Error): void {
    if (this.done) return;
    this.over();
    if (this.headSent || !this.client) this.host.w.frame(T.Reset, 0, this.id, null);
    this.sock?.destroy();
    this.finish(err ?? null);
  }

  /** The connection under it failed: nothing more can be sent. */
  fail(err: Error): void {
    if (this.done) return;
    this.over();
    this.sock?.destroy();
    this.finish(err);
  }

  /** The table's destroy: a reset with a reason. */
  destroy(err?: Error): void {
    this.reset(err);
  }

  private protocolError(why: string): void {
    if (this.done) return;
    this.over();
    this.host.w.frame(T.Reset, 0, this.id, RST_PROTOCOL);
    this.sock?.destroy();
    this.finish(new MeshFault('protocol', `bad tunnel stream: ${why}`));
  }

  private over(): void {
    this.done = true;
    this.tx.close();
    this.rx.close();
    this.host.forgetTunnel(this.id);
  }

  private finish(err: Error | null): void {
    // Before it opened, a failure is the caller's to handle; after, the socket carried it.
    if (err !== null && !this.open && this.client) this.emit('error', err);
    this.emit('close');
  }
}

/** The corked pieces go out in one write; what the socket could not take yet stops the window's credit until 'drain'. */
function uncorkTunnel(t: Tunnel): void {
  t.corked = false;
  const sock = t.sock!;
  sock.uncork();
  if (sock.writableLength > sock.writableHighWaterMark) t.rx.pause();
}

function valueOf(raw: string[], name: string): string {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) return raw[i + 1]!;
  return '';
}

const TUNNEL = Symbol('mesh.tunnel');
type TunnelSocket = net.Socket & { [TUNNEL]?: Tunnel };

function onTunnelRead(this: TunnelSocket, n: number, buf: Uint8Array): boolean {
  // Reads start once the socket is connected, which is when it is joined to its tunnel.
  this[TUNNEL]?.fromSocket((buf as Buffer).subarray(0, n));
  return true;
}

/**
 * Options for a socket the proxy opens for a tunnel (net.connect): it reads into the shared read
 * buffer; tunnelReads(sock, t) names the tunnel its reads go to, before attach.
 */
export const TUNNEL_READS = { buffer: READ_BUF, callback: onTunnelRead };

export function tunnelReads(sock: net.Socket, t: Tunnel): void {
  (sock as TunnelSocket)[TUNNEL] = t;
}
