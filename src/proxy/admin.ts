// The admin listener: liveness, readiness and Prometheus metrics, on localhost (every address in a pod).
// Served by the proxy's own HTTP/1.1 codec, as every other listener is: keep-alive, the same head and idle
// timeouts, and no node:http in a sidecar (~0.6 MB RSS, issue 14).
import type net from 'node:net';
import { createH1Server, type H1Server, type Req, type Res } from './wire/h1-server.js';
import { STATUS_TEXT } from './wire/status-text.js';

export interface AdminState {
  ready(): boolean;
  metrics(): string;
}

/** Prometheus' text exposition format. */
const METRICS_TYPE = 'text/plain; version=0.0.4';

export function createAdminServer(state: AdminState): H1Server {
  return createH1Server({
    request(req: Req, res: Res) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        // A body nobody reads is not waited for: the connection closes after the answer.
        if (req.hasBody) res.shouldKeepAlive = false;
        return text(res, 405, 'only GET and HEAD\n', 'text/plain', ['allow', 'GET, HEAD']);
      }
      const q = req.url.indexOf('?');
      const path = q < 0 ? req.url : req.url.slice(0, q);
      if (path === '/live') return text(res, 200, 'live\n');
      if (path === '/ready') return state.ready() ? text(res, 200, 'ready\n') : text(res, 503, 'not ready\n');
      if (path === '/metrics') return text(res, 200, state.metrics(), METRICS_TYPE);
      text(res, 404, 'not found\n');
    },
    // Nothing here switches protocols: the request is answered and the connection closed once the answer is out
    // (the codec reads no more from it, so it would not see the client close).
    upgrade(_req: Req, socket: net.Socket) {
      const msg = 'the admin listener does not upgrade\n';
      socket.end(`HTTP/1.1 400 ${STATUS_TEXT[400]}\r\ncontent-type: text/plain\r\ncontent-length: ${msg.length}\r\nconnection: close\r\n\r\n${msg}`, () => socket.destroy());
    },
  });
}

function text(res: Res, status: number, body: string, type = 'text/plain', extra: string[] = []): void {
  const b = Buffer.from(body);
  res.writeHead(status, undefined, ['content-type', type, 'content-length', String(b.length), ...extra]);
  res.end(b);
}
