// The `ws` package (a devDependency; untyped here): a real WebSocket client and server for tests,
// typed as far as the tests use them.
import { createRequire } from 'node:module';
import type { EventEmitter } from 'node:events';
import type http from 'node:http';
import type { Duplex } from 'node:stream';

export interface WsClient extends EventEmitter {
  readonly readyState: number;
  send(data: Buffer | string, cb?: (err?: Error) => void): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
}

export interface WsServer extends EventEmitter {
  handleUpgrade(req: http.IncomingMessage, sock: Duplex, head: Buffer, cb: (ws: WsClient) => void): void;
  close(): void;
}

const ws = createRequire(import.meta.url)('ws') as {
  WebSocket: new (url: string, o?: { headers?: Record<string, string>; maxPayload?: number }) => WsClient;
  WebSocketServer: new (o: { noServer: true; maxPayload?: number }) => WsServer;
};

export const WebSocket = ws.WebSocket;
export const WebSocketServer = ws.WebSocketServer;
