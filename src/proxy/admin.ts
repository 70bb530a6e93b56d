// The admin listener: liveness, readiness and Prometheus metrics, on localhost.
import http from 'node:http';

export interface AdminState {
  ready(): boolean;
  metrics(): string;
}

export function createAdminServer(state: AdminState): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/live') return text(res, 200, 'live\n');
    if (path === '/ready') return state.ready() ? text(res, 200, 'ready\n') : text(res, 503, 'not ready\n');
    if (path === '/metrics') return text(res, 200, state.metrics(), 'text/plain; version=0.0.4');
    text(res, 404, 'not found\n');
  });
}

function text(res: http.ServerResponse, status: number, body: string, type = 'text/plain'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
