// Upgrade (WebSocket and the like): after the 101 the connection is an opaque byte stream both ways.
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { ERROR_HEADER } from './errors.js';

export function writeHead(socket: Duplex, status: number, message: string, raw: string[]): void {
  let head = `HTTP/1.1 ${status} ${message}\r\n`;
  for (let i = 0; i < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  socket.write(head + '\r\n');
}

export function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  if (socket.destroyed) return;
  writeHead(socket, status, status === 400 ? 'Bad Request' : status === 403 ? 'Forbidden' : status === 503 ? 'Service Unavailable' : 'Bad Gateway', [
    'content-length', String(Buffer.byteLength(reason) + 1), 'connection', 'close', ERROR_HEADER, reason,
  ]);
  socket.end(reason + '\n');
}

/** Joins a downstream socket that asked to upgrade with the upstream request made for it. */
export function relayUpgrade(socket: Duplex, head: Buffer, up: ClientRequest, onDone?: () => void): void {
  let settled = false;
  const settle = () => {
    if (!settled) {
      settled = true;
      onDone?.();
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
  up.on('error', (err: Error) => {
    settle();
    refuseUpgrade(socket, 502, `upgrade failed: ${err.message}`);
  });
  // An upgrade request has no body: what follows its head is the new protocol's, sent after the 101.
  up.end();
}
