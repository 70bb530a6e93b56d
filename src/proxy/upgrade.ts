// Upgrade (WebSocket and the like): the request runs the same layers as any other, up to its own
// last step; after the 101 the connection is an opaque byte stream both ways.
import { EventEmitter } from 'node:events';
import { STATUS_CODES, type ClientRequest, type IncomingMessage } from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { Exchange, ProxyError, respondError, type Handler } from './exchange.js';
import { codeOf } from './errors.js';
import type { RequestStats } from './metrics.js';
import type { Req, Res } from './wire/h1-server.js';

export function writeHead(socket: Duplex, status: number, message: string, raw: string[]): void {
  let head = `HTTP/1.1 ${status} ${message}\r\n`;
  for (let i = 0; i < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  socket.write(head + '\r\n');
}

/**
 * The response side of an exchange that asked to upgrade. Until the upgrade is made, what the layers can write is a
 * refusal, and the connection closes after it.
 */
export class UpgradeRes extends EventEmitter implements Res {
  statusCode = 101;
  headersSent = false;
  writableFinished = false;
  destroyed = false;
  shouldKeepAlive = false;
  bodyBytes = 0;
  private reason: string | undefined;
  private raw: string[] = [];

  constructor(readonly socket: net.Socket, readonly head: Buffer) {
    super();
  }

  writeHead(status: number, reason: string | undefined, raw: string[]): this {
    this.statusCode = status;
    this.reason = reason;
    this.raw = raw;
    return this;
  }

  write(): boolean {
    return false;
  }

  end(chunk?: Buffer): void {
    if (this.headersSent || this.destroyed) return;
    this.headersSent = true;
    this.writableFinished = true;
    if (!this.socket.destroyed) {
      writeHead(this.socket, this.statusCode, this.reason ?? STATUS_CODES[this.statusCode] ?? '', [...this.raw, 'connection', 'close']);
      this.bodyBytes = chunk?.length ?? 0;
      if (chunk) this.socket.end(chunk);
      else this.socket.end();
    }
    this.emit('close');
  }

  destroy(): void {
    this.destroyed = true;
    this.socket.destroy();
  }
}

/** The exchange an upgrade request runs its layers with. */
export function upgradeExchange(req: Req, socket: net.Socket, head: Buffer, stats: RequestStats): Exchange {
  const ex = new Exchange(req, new UpgradeRes(socket, head), stats);
  ex.upgrade = true;
  return ex;
}

/** Joins a downstream socket that asked to upgrade with the upstream request made for it; `done` hears when it ends. */
export function relayUpgrade(ex: Exchange, up: ClientRequest, done: Handler): void {
  const { socket, head } = ex.res as UpgradeRes;
  let settled = false;
  const settle = () => {
    if (!settled) {
      settled = true;
      done(ex);
    }
  };
  socket.on('error', () => up.destroy());
  // A client gone before the upstream answered: the upstream request ends too (and settles).
  let joined = false;
  socket.once('close', () => {
    if (!joined && !settled) up.destroy();
  });
  up.on('upgrade', (upRes: IncomingMessage, upSocket: Duplex, upHead: Buffer) => {
    joined = true;
    writeHead(socket, 101, upRes.statusMessage || 'Switching Protocols', upRes.rawHeaders);
    if (upHead.length) socket.write(upHead);
    if (head.length) upSocket.write(head);
    upSocket.pipe(socket);
    socket.pipe(upSocket);
    const close = () => {
      settle();
      socket.destroy();
      upSocket.destroy();
    };
    upSocket.on('error', close);
    socket.on('error', close);
    upSocket.on('close', close);
    socket.on('close', close);
  });
  up.on('response', (upRes: IncomingMessage) => {
    // The upstream declined the upgrade: pass its answer on and close.
    writeHead(socket, upRes.statusCode ?? 502, upRes.statusMessage ?? '', [...upRes.rawHeaders.filter((_, i, a) => i % 2 === 0 ? a[i]!.toLowerCase() !== 'connection' : a[i - 1]!.toLowerCase() !== 'connection'), 'connection', 'close']);
    upRes.pipe(socket);
    upRes.on('end', settle);
  });
  up.on('error', (err: NodeJS.ErrnoException) => {
    settle();
    respondError(ex, new ProxyError(codeOf(err), `upgrade failed: ${err.message}`));
  });
  // An upgrade request has no body: what follows its head is the new protocol's, sent after the 101.
  up.end();
}
