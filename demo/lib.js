// Shared plumbing for the demo apps: a 127.0.0.1 server with a clean shutdown, JSON replies,
// and calls to other services through the mesh sidecar's outbound listener: HTTP/1.1, or unary
// gRPC over HTTP/2 cleartext with Node's own http2 (length-prefixed JSON messages, application/grpc+json).
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';

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

const PREFACE = 'PRI * HTTP/2.0';

/**
 * Starts the app's server on 127.0.0.1:$PORT; SIGTERM/SIGINT close it and exit 0. With `grpc` (gRPC path →
 * async function of the request message returning the reply) it also serves those unary calls over HTTP/2
 * cleartext on the same port: the connection's first bytes decide, as the sidecar's listener does.
 */
export function serve(name, handler, grpc) {
  const port = Number(process.env.PORT);
  if (!process.env.PORT || !Number.isInteger(port) || port < 1 || port > 65535) {
    console.error(`${name}: set PORT to the port to listen on (got '${process.env.PORT ?? ''}')`);
    process.exit(1);
  }
  const onRequest = (req, res) => {
    if (grpc && isGrpc(req.headers['content-type'])) return answerGrpc(name, grpc, req, res);
    Promise.resolve(handler(req, res)).catch((err) => {
      console.error(`${name}: ${req.method} ${req.url}: ${err?.stack ?? err}`);
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  };
  const h1 = http.createServer(onRequest);
  const h2 = grpc ? http2.createServer(onRequest) : null;
  const sockets = new Set();
  const server = !h2 ? h1 : net.createServer((sock) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    sock.once('data', (first) => {
      sock.pause();
      sock.unshift(first);
      // http2 reads what is buffered on the socket itself; HTTP/1.1 needs it flowing.
      if (first.toString('latin1', 0, PREFACE.length) === PREFACE) return h2.emit('connection', sock);
      h1.emit('connection', sock);
      sock.resume();
    });
  });
  server.on('error', (err) => {
    console.error(`${name}: cannot listen on 127.0.0.1:${port}: ${err.message}`);
    process.exit(1);
  });
  server.listen(port, '127.0.0.1', () => console.log(`${name} ${version} listening on 127.0.0.1:${port}${h2 ? ' (HTTP/1.1 and gRPC over h2c)' : ''}`));
  const stop = () => {
    server.close(() => process.exit(0));
    // Keep-alive connections from the sidecar would otherwise hold close() open.
    h1.closeAllConnections();
    for (const sock of sockets) sock.destroy();
    agent.destroy();
    session?.destroy();
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return server;
}

const isGrpc = (type) => typeof type === 'string' && type.startsWith('application/grpc');

/** One gRPC message: a 0 (not compressed) byte, its length, then the JSON. */
function frame(value) {
  const json = Buffer.from(JSON.stringify(value));
  const out = Buffer.alloc(5 + json.length);
  out.writeUInt32BE(json.length, 1);
  json.copy(out, 5);
  return out;
}

/** The one message of a unary call's body, parsed; throws on anything else. */
function unframe(body) {
  if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) throw new Error('not one uncompressed gRPC message');
  return JSON.parse(body.toString('utf8', 5));
}

/** Answers a unary gRPC call: the reply and grpc-status 0 in the trailers, or a failure trailers-only. */
function answerGrpc(name, methods, req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const fail = (code, message) => res.stream.respond({ ':status': 200, 'content-type': 'application/grpc+json', 'grpc-status': String(code), 'grpc-message': encodeURIComponent(message) }, { endStream: true });
    const method = methods[req.url];
    if (!method) return fail(12, `${req.url} is not a method of ${name}`);
    let reply;
    try {
      reply = await method(unframe(Buffer.concat(chunks)), req.headers);
    } catch (err) {
      console.error(`${name}: ${req.url}: ${err?.stack ?? err}`);
      return fail(13, 'internal error');
    }
    res.writeHead(200, { 'content-type': 'application/grpc+json' });
    res.addTrailers({ 'grpc-status': '0' });
    res.end(frame(reply));
  });
}

let session = null;

/** The sidecar's outbound listener as an HTTP/2 (prior knowledge) session, opened once and again after it closes. */
function h2Session() {
  if (session !== null && !session.closed && !session.destroyed) return session;
  const { host, port } = outbound();
  const s = http2.connect(`http://${host}:${port}`);
  s.on('error', () => {});
  s.once('close', () => {
    if (session === s) session = null;
  });
  // An idle session must not keep the process alive.
  s.unref();
  return (session = s);
}

/** A unary gRPC call to `service` through the sidecar (`path` like /bookinfo.Ratings/Get); rejects on a status other than OK and after 3 s. */
export function callGrpc(service, path, message, headers) {
  return new Promise((resolve, reject) => {
    const st = h2Session().request({
      ...headers, ':method': 'POST', ':path': path, ':authority': `${service}:${SERVICE_PORT}`,
      'content-type': 'application/grpc+json', te: 'trailers', 'grpc-timeout': `${CALL_TIMEOUT_MS}m`,
    });
    const chunks = [];
    let status;
    let why = '';
    const ended = (h) => {
      if (h['grpc-status'] === undefined) return;
      status = h['grpc-status'];
      why = decodeURIComponent(String(h['grpc-message'] ?? ''));
    };
    st.on('response', ended);
    st.on('trailers', ended);
    st.on('data', (c) => chunks.push(c));
    st.on('error', reject);
    st.on('close', () => {
      clearTimeout(timer);
      if (status === undefined) return reject(new Error(`${service} ended the call without a gRPC status`));
      if (status !== '0') return reject(new Error(`${service} answered gRPC status ${status}${why ? `: ${why}` : ''}`));
      try {
        resolve(unframe(Buffer.concat(chunks)));
      } catch (err) {
        reject(new Error(`${service} answered ${err.message}`));
      }
    });
    const timer = setTimeout(() => {
      st.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`${service} did not answer within ${CALL_TIMEOUT_MS / 1000} s`));
    }, CALL_TIMEOUT_MS);
    st.end(frame(message));
  });
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
