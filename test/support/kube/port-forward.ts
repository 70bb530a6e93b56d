// The pods/portforward subresource as the API server serves it to @kubernetes/client-node: an upgrade to a WebSocket
// (protocol v4.channel.k8s.io) per forwarded connection, authenticated and authorized (create pods/portforward) like
// any request. Channel 0 carries the data and channel 1 errors, each opened with the port (2 bytes, little-endian),
// every message prefixed with its channel byte. The fake forwards to a TCP backend the test registered for
// "ns/pod:port"; without one, or when the backend refuses, the error goes on channel 1 as the kubelet's does.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Authority } from './auth.js';
import type { ObjectStore } from './store.js';
import { StatusError, type StatusReason } from './types.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const PROTOCOL = 'v4.channel.k8s.io';
/** A client frame larger than this closes the connection (the fake's bound; client-node sends what it reads). */
const MAX_FRAME = 16 * 1024 * 1024;

export interface PortForwardDeps {
  store: ObjectStore;
  auth: Authority;
  /** "ns/pod:port" → "127.0.0.1:NNNN". */
  portForwards: Map<string, string>;
  anonymous: boolean;
}

const PATH = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/portforward$/;

function refuse(socket: Duplex, code: number, reason: StatusReason, message: string): void {
  const body = JSON.stringify(new StatusError(code, reason, message).toStatus());
  socket.end(`HTTP/1.1 ${code} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/** One unmasked server frame. */
function frame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, n]) : n < 65536 ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 255]) : Buffer.alloc(10);
  if (n >= 65536) {
    head[0] = 0x80 | opcode;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, payload]);
}
const channel = (ch: number, data: Buffer) => frame(2, Buffer.concat([Buffer.from([ch]), data]));

/** Handles an 'upgrade' event; answers anything but a port-forward with 404. */
export function handleUpgrade(deps: PortForwardDeps, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => {});
  const url = new URL(req.url ?? '/', 'http://fake');
  const m = PATH.exec(url.pathname);
  if (!m) return refuse(socket, 404, 'NotFound', 'the server could not find the requested resource');
  const [, namespace, pod] = m as unknown as [string, string, string];
  let user;
  try {
    user = deps.auth.authenticate(req.headers.authorization, req.socket);
  } catch {
    if (!deps.anonymous || req.headers.authorization) return refuse(socket, 401, 'Unauthorized', 'Unauthorized');
    user = { username: 'system:anonymous' };
  }
  try {
    deps.auth.authorize(user, { verb: 'create', group: '', resource: 'pods', subresource: 'portforward', namespace, name: pod });
  } catch (err) {
    return refuse(socket, 403, 'Forbidden', (err as Error).message);
  }
  const rt = deps.store.registry.find('', 'v1', 'pods');
  if (!rt || !deps.store.peek(rt, namespace, pod)) return refuse(socket, 404, 'NotFound', `pods "${pod}" not found`);
  const port = Number(url.searchParams.get('ports'));
  if (!Number.isInteger(port) || port < 1 || port > 65535) return refuse(socket, 400, 'BadRequest', 'query parameter "ports" is required');
  const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
  if (!offered.includes(PROTOCOL)) return refuse(socket, 400, 'BadRequest', `no supported protocol in ${offered.join(', ')}`);
  const accept = createHash('sha1').update(String(req.headers['sec-websocket-key']) + GUID).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ${PROTOCOL}\r\n\r\n`);
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16LE(port);
  socket.write(channel(0, portBytes));
  socket.write(channel(1, portBytes));

  let backend: Socket | undefined;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    backend?.destroy();
    socket.end(frame(8, Buffer.from([0x03, 0xe8])));
  };
  const target = deps.portForwards.get(`${namespace}/${pod}:${port}`);
  if (!target) {
    socket.write(channel(1, Buffer.from(`error forwarding port ${port} to pod ${pod}: connection refused`)));
    close();
  } else {
    const [host, p] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
    backend = connect(p, host);
    backend.on('data', (d: Buffer) => socket.write(channel(0, d)));
    backend.on('error', (err) => {
      if (!closed) socket.write(channel(1, Buffer.from(`error forwarding port ${port} to pod ${pod}: ${err.message}`)));
      close();
    });
    backend.on('end', close);
  }
  socket.on('close', () => backend?.destroy());

  // Client frames: masked; binary data on channel 0 goes to the backend, close ends both sides.
  let buf: Buffer = head.length ? Buffer.from(head) : Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      if (buf.length < 2) return;
      const opcode = buf[0]! & 0x0f;
      let len = buf[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      if (len > MAX_FRAME) return void socket.destroy();
      const masked = (buf[1]! & 0x80) !== 0;
      if (buf.length < off + (masked ? 4 : 0) + len) return;
      const mask = masked ? buf.subarray(off, off + 4) : undefined;
      off += masked ? 4 : 0;
      const payload = Buffer.from(buf.subarray(off, off + len));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!;
      buf = buf.subarray(off + len);
      if (opcode === 8) return close();
      if (opcode === 9) socket.write(frame(10, payload));
      else if (opcode === 2 && payload[0] === 0 && payload.length > 1) backend?.write(payload.subarray(1));
    }
  };
  socket.on('data', onData);
  if (buf.length) {
    const first = buf;
    buf = Buffer.alloc(0);
    onData(first);
  }
}
