// Shared plumbing for the demo apps: a 127.0.0.1 server with a clean shutdown, JSON replies,
// and calls to other services through the mesh sidecar's outbound listener.
import http from 'node:http';

/** Headers the apps pass on to the services they call, as bookinfo does, so traces and routing by user work. */
export const FORWARD_HEADERS = [
  'end-user', 'x-request-id', 'traceparent', 'tracestate',
  'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags', 'b3',
  'user-agent', 'cookie',
];

/** Port the demo services are addressed on (bookinfo's); the sidecar routes by the name before it. */
const SERVICE_PORT = 9080;
const CALL_TIMEOUT_MS = 3000;

export const version = process.env.SERVICE_VERSION || 'v1';

/** Starts the app's server on 127.0.0.1:$PORT; SIGTERM/SIGINT close it and exit 0. */
export function serve(name, handler) {
  const port = Number(process.env.PORT);
  if (!process.env.PORT || !Number.isInteger(port) || port < 1 || port > 65535) {
    console.error(`${name}: set PORT to the port to listen on (got '${process.env.PORT ?? ''}')`);
    process.exit(1);
  }
  const server = http.createServer((req, res) => {
    Promise.resolve(handler(req, res)).catch((err) => {
      console.error(`${name}: ${req.method} ${req.url}: ${err?.stack ?? err}`);
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
  server.on('error', (err) => {
    console.error(`${name}: cannot listen on 127.0.0.1:${port}: ${err.message}`);
    process.exit(1);
  });
  server.listen(port, '127.0.0.1', () => console.log(`${name} ${version} listening on 127.0.0.1:${port}`));
  const stop = () => {
    server.close(() => process.exit(0));
    // Keep-alive connections from the sidecar would otherwise hold close() open.
    server.closeAllConnections();
    agent.destroy();
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return server;
}

export function sendJson(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

export function sendText(res, status, text, type = 'text/plain; charset=utf-8') {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The forwardable headers of an incoming request. */
export function propagated(req) {
  const out = {};
  for (const h of FORWARD_HEADERS) if (req.headers[h] !== undefined) out[h] = req.headers[h];
  return out;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function outbound() {
  const m = /^(.+):(\d+)$/.exec(process.env.MESH_OUTBOUND ?? '');
  if (!m) throw new Error(`MESH_OUTBOUND is not set to the sidecar's host:port (got '${process.env.MESH_OUTBOUND ?? ''}')`);
  return { host: m[1], port: Number(m[2]) };
}

/** GETs `path` from `service` through the sidecar and returns the parsed JSON; rejects on errors, non-2xx and after 3 s. */
export async function callService(service, path, headers) {
  try {
    return await callOnce(service, path, headers);
  } catch (err) {
    // A pooled connection the sidecar closed while idle: the request never reached it, so one retry is safe.
    if (err.reusedSocket && err.code === 'ECONNRESET') return callOnce(service, path, headers);
    throw err;
  }
}

function callOnce(service, path, headers) {
  const { host, port } = outbound();
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, path, method: 'GET', agent, headers: { ...headers, host: `${service}:${SERVICE_PORT}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        clearTimeout(timer);
        if (res.statusCode < 200 || res.statusCode > 299) return reject(new Error(`${service} answered ${res.statusCode}: ${body.slice(0, 200).trim()}`));
        try {
          resolve(JSON.parse(body));
        } catch {
          reject(new Error(`${service} answered with invalid JSON`));
        }
      });
      res.on('error', reject);
    });
    // One deadline for the whole exchange, body included, so a stuck dependency cannot hang the caller.
    const timer = setTimeout(() => req.destroy(new Error(`${service} did not answer within ${CALL_TIMEOUT_MS / 1000} s`)), CALL_TIMEOUT_MS);
    req.on('error', (err) => {
      clearTimeout(timer);
      err.reusedSocket = req.reusedSocket;
      reject(err);
    });
    req.end();
  });
}
