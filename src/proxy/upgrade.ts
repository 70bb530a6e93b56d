// Upgrade (WebSocket and the like): the request runs the same layers as any other, up to its own
// last step (an upgrade stream on mesh/1 to the peer, an HTTP/1.1 connection to the app or a host
// outside the mesh); after the 101 the connection is an opaque byte stream both ways. Any other
// answer is passed on as an ordinary response, and the connection closes after it.
import { EventEmitter } from 'node:events';
import { STATUS_TEXT } from './wire/status-text.js';
import type net from 'node:net';
import { Exchange, ProxyError, respondError } from './exchange.js';
import { codeOf, MeshFault, neverSent } from './errors.js';
import type { RequestStats } from './metrics.js';
import type { Relaying } from './relay.js';
import { join } from './tcp.js';
import { forwardHeaders } from './wire/h1-headers.js';
import type { Req } from './wire/h1-server.js';
import { upgradeRequest, type UpstreamResponse } from './wire/h1-client.js';
import { Tunnel, type UpgradeDown } from './wire/mux-tunnel.js';

export function writeHead(socket: net.Socket, status: number, message: string, raw: string[]): void {
  let head = `HTTP/1.1 ${status} ${message}\r\n`;
  for (let i = 0; i < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  socket.write(head + '\r\n');
}

/**
 * The client side of an upgrade on an HTTP/1.1 connection: any answer but a 101 is written as an ordinary response
 * and the connection closes after it; a 101 joins the connection to the upstream's. `head` is what the client sent
 * past its request head (the new protocol's first bytes), held until the 101.
 */
export class UpgradeRes extends EventEmitter implements UpgradeDown {
  statusCode = 101;
  headersSent = false;
  writableFinished = false;
  destroyed = false;
  shouldKeepAlive = false;
  bodyBytes = 0;
  private reason: string | undefined;
  private raw: string[] = [];
  private closed = false;

  constructor(readonly socket: net.Socket, readonly head: Buffer) {
    super();
    // The client went away, or the upgraded connection is over.
    socket.once('close', () => this.over());
  }

  private over(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.writableFinished) this.destroyed = true;
    this.emit('close');
  }

  writeHead(status: number, reason: string | undefined, raw: string[]): this {
    this.statusCode = status;
    this.reason = reason;
    this.raw = raw;
    return this;
  }

  private sendHead(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    writeHead(this.socket, this.statusCode, this.reason || STATUS_TEXT[this.statusCode] || '', [...this.raw, 'connection', 'close']);
  }

  write(chunk: Buffer): boolean {
    if (this.destroyed || this.writableFinished || this.socket.destroyed) return false;
    this.sendHead();
    this.bodyBytes += chunk.length;
    if (this.socket.write(chunk)) return true;
    this.socket.once('drain', () => this.emit('drain'));
    return false;
  }

  end(chunk?: Buffer): void {
    if (this.destroyed || this.writableFinished) return;
    this.writableFinished = true;
    if (!this.socket.destroyed) {
      this.sendHead();
      this.bodyBytes += chunk?.length ?? 0;
      if (chunk) this.socket.end(chunk);
      else this.socket.end();
    }
    this.over();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.socket.destroy();
    this.over();
  }

  switchProtocols(reason: string, raw: string[], far: net.Socket | Tunnel, leftover: Buffer | null): void {
    if (this.destroyed || this.headersSent || this.socket.destroyed) return void far.destroy();
    this.statusCode = 101;
    this.headersSent = true;
    this.writableFinished = true;
    writeHead(this.socket, 101, reason || 'Switching Protocols', raw);
    if (far instanceof Tunnel) far.attach(this.socket, this.head);
    else {
      if (leftover !== null && leftover.length > 0) this.socket.write(leftover);
      join(this.socket, far, this.head);
    }
    this.socket.resume();
  }
}

/** The exchange an upgrade request on an HTTP/1.1 connection runs its layers with. */
export function upgradeExchange(req: Req, socket: net.Socket, head: Buffer, stats: RequestStats): Exchange {
  const ex = new Exchange(req, new UpgradeRes(socket, head), stats);
  ex.upgrade = true;
  return ex;
}

/** An upgrade request on its way upstream: 'upgrade' (the 101's head, the far side, bytes read past it), 'response', or 'error'. */
export interface UpgradeUpstream extends EventEmitter {
  readonly reusedSocket?: boolean;
  destroy(err?: Error): void;
}

interface UpHead {
  readonly statusMessage?: string;
  readonly rawHeaders: string[];
}

function contentLength(raw: string[]): string | null {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 14 && raw[i]!.toLowerCase() === 'content-length') return raw[i + 1]!;
  return null;
}

/**
 * One try of an upgrade upstream, as relay.ts does for requests: it decides nothing, reports how the try went to the
 * layers above (a 101 or another status at its head; a failure before it; done when the exchange or the upgraded
 * connection is over) and answers with the failure's code when none of them took it over.
 */
export function relayUpgrade(ex: Exchange, up: UpgradeUpstream, t: Relaying): void {
  const res = ex.res as UpgradeDown;
  let finished = false;
  let answered = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    if (ex.upstream === up) ex.upstream = null;
    t.report.done(ex);
  };
  ex.upstream = up;
  res.once('close', () => {
    if (!answered && !finished) up.destroy(new MeshFault('upstream', 'the client went away'));
    finish();
  });
  up.on('upgrade', (head: UpHead, far: net.Socket | Tunnel, leftover: Buffer | null) => {
    answered = true;
    if (res.destroyed || t.report.response(ex, 101)) {
      far.destroy();
      return finish();
    }
    // Past its head: a rule's timeout no longer applies; the try is done when the connection is.
    ex.upstream = null;
    ex.observe(101);
    res.switchProtocols(head.statusMessage ?? '', forwardHeaders(head.rawHeaders, true), far, leftover);
  });
  up.on('response', (upRes: UpstreamResponse) => {
    answered = true;
    const status = upRes.statusCode;
    if (t.report.response(ex, status)) {
      upRes.resume();
      up.destroy();
      return finish();
    }
    ex.observe(status);
    const headers = forwardHeaders(upRes.rawHeaders, false);
    const length = contentLength(upRes.rawHeaders);
    if (length !== null) headers.push('content-length', length);
    res.writeHead(status, upRes.statusMessage, headers);
    upRes.on('data', (chunk: Buffer) => {
      if (!res.write(chunk)) {
        upRes.pause();
        res.once('drain', () => upRes.resume());
      }
    });
    upRes.on('end', () => res.end());
    upRes.on('aborted', () => res.destroy());
    upRes.on('error', () => res.destroy());
  });
  up.on('error', (err: NodeJS.ErrnoException) => {
    if (finished) return;
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return finish();
    }
    const code = codeOf(err);
    const taken = t.report.failed(ex, err, code, up.reusedSocket === true);
    finish();
    if (taken) return;
    const reason = err instanceof MeshFault ? `${t.describe(ex)}: ${err.message}` : neverSent(code) ? `cannot connect to ${t.describe(ex)}: ${err.code ?? err.message}` : `${t.describe(ex)} failed: ${err.message}`;
    respondError(ex, new ProxyError(code, reason));
  });
}

/** An upgrade over plain HTTP/1.1 to host:port (the app on 127.0.0.1, or a host outside the mesh). */
export function plainUpgrade(ex: Exchange, host: string, port: number, t: Relaying): void {
  const up = upgradeRequest({ host, port, method: ex.req.method, path: ex.path, headers: ex.headers });
  relayUpgrade(ex, up, t);
  up.end();
}
