// The app behind the sidecar in the hostile-input suite: a Node HTTP server (llhttp, a parser that is not the
// proxy's) that records every byte the sidecar sends it, every request it reads from them, and every parse error.
import http from 'node:http';
import type net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Meant } from './oracle.js';

export interface Seen extends Meant {
  /** Which connection from the sidecar carried it, numbered from 1. */
  conn: number;
}

export interface Backend {
  port: number;
  seen: Seen[];
  /** Parse errors the app's parser met in what the sidecar sent (llhttp's HPE_* codes). */
  errors: string[];
  /** Every byte each connection carried, by connection number. */
  bytes: Map<number, Buffer[]>;
  /** Requests still being read. */
  inflight(): number;
  close(): Promise<void>;
}

const CONN = Symbol('hostile.conn');
type Numbered = net.Socket & { [CONN]?: number };

export async function startBackend(): Promise<Backend> {
  const seen: Seen[] = [];
  const errors: string[] = [];
  const bytes = new Map<number, Buffer[]>();
  let conns = 0;
  let reading = 0;
  const server = http.createServer({ keepAliveTimeout: 10_000 }, (req, res) => {
    const s: Seen = { conn: (req.socket as Numbered)[CONN] ?? 0, method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders, body: Buffer.alloc(0), complete: false, upgrade: false };
    seen.push(s);
    reading++;
    const parts: Buffer[] = [];
    let settled = false;
    const settle = () => {
      if (!settled) {
        settled = true;
        reading--;
      }
    };
    req.on('data', (c: Buffer) => {
      parts.push(c);
      s.body = Buffer.concat(parts);
    });
    req.on('end', () => {
      s.complete = true;
      settle();
      if (s.url === '/ok/switch') {
        // An app switching protocols on a request that did not ask to: what follows is not HTTP the proxy can read.
        res.socket?.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      res.setHeader('content-type', 'text/plain');
      res.end(`ok ${s.method} ${s.url} ${s.body.length}\n`);
    });
    req.on('close', settle);
    req.on('error', settle);
  });
  server.on('connection', (sock: Numbered) => {
    const n = (sock[CONN] = ++conns);
    const log: Buffer[] = [];
    bytes.set(n, log);
    sock.on('data', (c: Buffer) => log.push(c));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, sock: net.Socket) => {
    // A message cut short by a closing connection is the proxy giving up on it, not a parse error.
    if (err.code?.startsWith('HPE_') && err.code !== 'HPE_INVALID_EOF_STATE') errors.push(`${err.code} on connection ${(sock as Numbered)[CONN]}`);
    sock.destroy();
  });
  // An upgrade the sidecar made: accepted with a 101, then every byte echoed back.
  server.on('upgrade', (req: http.IncomingMessage, sock: net.Socket, head: Buffer) => {
    seen.push({ conn: (sock as Numbered)[CONN] ?? 0, method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders, body: Buffer.alloc(0), complete: true, upgrade: true });
    sock.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${req.headers.upgrade}\r\n\r\n`);
    if (head.length) sock.write(head);
    sock.on('data', (c: Buffer) => sock.write(c));
    // The server lets connections half-close; a tunnel ends with its peer.
    sock.on('end', () => sock.end());
    sock.on('error', () => sock.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    errors,
    bytes,
    inflight: () => reading,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
