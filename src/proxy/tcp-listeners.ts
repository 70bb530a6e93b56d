// Where an app's TCP enters its sidecar: the outbound listener (HTTP, or `CONNECT host:port` as an
// HTTP proxy takes it, told apart by the first line as Linkerd detects protocols), and upstream
// listeners (`mesh run --upstream redis:6379=127.0.0.1:16379`, as Consul Connect's upstreams): a
// local port whose connections go to one service's port, opaque or, when the first line is an
// HTTP request and the port is not declared opaque, HTTP to that service. Inside a CONNECT to a
// mesh service the first bytes decide the same way (see Sniffing).
import net from 'node:net';
import { trackConnections, type H1Server } from './wire/h1-server.js';
import { headEnd, MAX_HEAD, parseRequestHead } from './wire/h1-parse.js';
import { STATUS_TEXT } from './wire/status-text.js';
import { ERROR_HEADER, STATUS, errorHeader, type ErrorCode } from './errors.js';
import { openTcp, type TcpOutbound } from './tcp.js';
import type { TcpStats } from './metrics.js';
import type { RouteTable } from './layers/route.js';
import { hostOnly } from './layers/normalize.js';
import type { PortSet } from '../model/ports.js';

/** How long an upstream listener waits for a client's first line before taking it as opaque (a server-speaks-first protocol). */
export const DETECT_MS = 1_000;
/** A connection to the outbound listener has no destination until it says one: silence this long closes it. */
const FIRST_LINE_MS = 10_000;
/** A request line longer than this is not HTTP (the head as a whole is bounded by MAX_HEAD). */
const MAX_LINE = 8 * 1024;
const REQUEST_LINE = /^[A-Z]{1,20} [^\s]+ HTTP\/1\.[01]$/;

export type Detected = 'http' | 'connect' | 'opaque';

/** What the first bytes say, or null while they do not say it yet. */
export function classify(b: Buffer): Detected | null {
  // HTTP/2's preface (PRI * HTTP/2.0) and HTTP/1 both start with an upper-case method.
  if (b[0]! < 0x41 || b[0]! > 0x5a) return 'opaque';
  const eol = b.indexOf('\r\n', 0, 'latin1');
  if (eol < 0) return b.length > MAX_LINE ? 'opaque' : null;
  const line = b.toString('latin1', 0, eol);
  if (line === 'PRI * HTTP/2.0') return 'http';
  if (!REQUEST_LINE.test(line)) return 'opaque';
  return line.startsWith('CONNECT ') ? 'connect' : 'http';
}

/**
 * Reads until the first bytes decide (or `timeoutMs` passes: opaque; 0 keeps waiting up to
 * FIRST_LINE_MS, then closes); the socket is paused and handed on with what was read.
 */
export function detect(sock: net.Socket, timeoutMs: number, cb: (kind: Detected, read: Buffer | null) => void, first: Buffer | null = null): void {
  let buf: Buffer | null = first;
  if (buf !== null) {
    const k = classify(buf);
    if (k !== null) return cb(k, buf);
  }
  let done = false;
  const finish = (kind: Detected | null) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    sock.removeListener('data', onData);
    sock.pause();
    if (kind === null) sock.destroy();
    else cb(kind, buf);
  };
  const onData = (c: Buffer) => {
    buf = buf === null ? c : Buffer.concat([buf, c]);
    const k = classify(buf);
    if (k !== null) finish(k);
  };
  const timer = setTimeout(finish, timeoutMs || FIRST_LINE_MS, timeoutMs ? 'opaque' : null);
  sock.on('data', onData);
  sock.once('end', () => finish(buf === null ? null : 'opaque'));
  sock.on('error', () => sock.destroy());
  sock.resume();
}

/** Answers a CONNECT (or an opaque connection) that cannot be carried, and closes. */
export function refuse(sock: net.Socket, http: boolean, code: ErrorCode, reason: string): void {
  if (sock.destroyed) return;
  if (!http) return void sock.destroy();
  const body = `${reason}\n`;
  const status = STATUS[code];
  sock.end(`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? ''}\r\n` +
    `content-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${ERROR_HEADER}: ${errorHeader(code, reason)}\r\nconnection: close\r\n\r\n${body}`);
}

/**
 * HTTP inside CONNECT tunnels (gRPC clients with http_proxy set go through CONNECT, and hold one
 * connection for every call): after a CONNECT to a meshed service on a port not declared opaque,
 * the first bytes inside decide, as on the outbound port itself.
 */
export interface Sniffing {
  /** The request stack for HTTP inside a CONNECT to `host`: that service is where requests naming none in the mesh go. */
  httpFor(host: string): H1Server;
  /** Destination ports never sniffed (`--opaque-ports`). */
  opaque?: PortSet;
}

/** Hosts whose CONNECTs get a request stack of their own (services in the mesh: a handful); past it, requests go by their own names. */
const MAX_SNIFF_HOSTS = 256;

/**
 * A CONNECT head (it may span reads): for a meshed service's port that is not opaque, 200 at once
 * and the first bytes inside decide (HTTP → the request stack, one balanced call at a time; else
 * opaque); otherwise the tunnel to its authority first, then 200 and bytes both ways.
 */
function connectTunnel(o: TcpOutbound, sock: net.Socket, first: Buffer, appConns: TcpStats, http: H1Server, sniff: Sniffing | undefined): void {
  let buf = first;
  const go = () => {
    const end = headEnd(buf);
    if (end < 0) {
      if (buf.length > MAX_HEAD) return refuse(sock, true, 'head_too_large', 'request head too large');
      return false;
    }
    sock.pause();
    let authority: string;
    try {
      authority = parseRequestHead(buf, end).url;
    } catch (err) {
      appConns.track(sock);
      refuse(sock, true, 'bad_request', (err as Error).message);
      return true;
    }
    const rest = buf.subarray(end + 4);
    const server = sniff === undefined ? null : sniffed(o, sniff, authority, http);
    if (server === null) {
      appConns.track(sock);
      openTcp(o, sock, authority, rest.length ? rest : null, {
        open: () => sock.write('HTTP/1.1 200 Connection Established\r\n\r\n'),
        refused: (code, reason) => refuse(sock, true, code, reason),
      });
      return true;
    }
    sock.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    detect(sock, DETECT_MS, (kind, read) => {
      if (kind === 'http') return toHttp(server, sock, read);
      appConns.track(sock);
      // The 200 went out already: a connection that cannot be carried is closed.
      openTcp(o, sock, authority, read, { open() {}, refused: () => sock.destroy() });
    }, rest.length ? rest : null);
    return true;
  };
  if (go() !== false) return;
  const timer = setTimeout(() => sock.destroy(), FIRST_LINE_MS);
  const more = (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    if (go() === false) return;
    clearTimeout(timer);
    sock.removeListener('data', more);
  };
  sock.on('data', more);
  sock.resume();
}

const sniffServers = new WeakMap<Sniffing, Map<string, H1Server>>();

/** The request stack for HTTP inside a CONNECT to `authority`, or null when its bytes go opaque at once. */
function sniffed(o: TcpOutbound, sniff: Sniffing, authority: string, http: H1Server): H1Server | null {
  const colon = authority.lastIndexOf(':');
  const port = Number(authority.slice(colon + 1));
  const host = hostOnly(authority);
  if (colon <= 0 || !o.table().hosts.has(host) || sniff.opaque?.has(port)) return null;
  let servers = sniffServers.get(sniff);
  if (servers === undefined) sniffServers.set(sniff, (servers = new Map()));
  let s = servers.get(host);
  if (s === undefined) {
    if (servers.size >= MAX_SNIFF_HOSTS) return http;
    servers.set(host, (s = sniff.httpFor(host)));
  }
  return s;
}

/** Hands a socket whose first bytes were read to an HTTP server, as if it had just been accepted. */
export function toHttp(server: H1Server, sock: net.Socket, read: Buffer | null): void {
  // HTTP connections close when the client's side ends, as a plain Node server's do.
  sock.allowHalfOpen = false;
  server.emit('connection', sock);
  // Given as if just read (unshift would fail on a client that has already ended its side); the server resumes the socket.
  if (read !== null) sock.emit('data', read);
}

/** Transparent capture in a pod (capture.ts): connections iptables redirected here go to their original destination. */
export interface Capture {
  /** Takes a redirected connection (true), or leaves one that came to the listener itself. */
  take(http: H1Server, sock: net.Socket): boolean;
  /** An opaque connection that has nowhere to go is closed: says why. */
  closed(sock: net.Socket): void;
}

/**
 * The outbound listener: HTTP to `http` (the request stack), CONNECT to a tunnel. Without an
 * original destination (a redirected connection's) opaque bytes cannot go anywhere: closed.
 */
export function createOutboundFront(http: H1Server, o: TcpOutbound, appConns: TcpStats, capture?: Capture, sniff?: Sniffing): H1Server {
  return trackConnections(net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (sock) => {
    if (capture?.take(http, sock)) return;
    detect(sock, 0, (kind, read) => {
      if (kind === 'http') return toHttp(http, sock, read);
      if (kind === 'connect') return connectTunnel(o, sock, read!, appConns, http, sniff);
      appConns.track(sock);
      capture?.closed(sock);
      sock.destroy();
    });
  }));
}

export interface UpstreamSpec {
  /** service[.namespace]:port, as the app would name it. */
  authority: string;
  /** Where the app connects: 127.0.0.1 and a port. */
  listenPort: number;
  opaque: boolean;
}

/** A table whose fallback is one service: HTTP on an upstream listener goes there whatever its Host says. */
export function withFallback(table: () => RouteTable, host: string): () => RouteTable {
  let from: RouteTable | null = null;
  let to: RouteTable | null = null;
  return () => {
    const t = table();
    if (t !== from) {
      from = t;
      to = { ...t, fallback: t.hosts.get(host) ?? null };
    }
    return to!;
  };
}

/** An upstream listener: opaque to the service's port, or HTTP to `http` when detected on a port that is not opaque. */
export function createUpstreamListener(u: UpstreamSpec, http: H1Server, o: TcpOutbound, appConns: TcpStats): H1Server {
  const tunnel = (sock: net.Socket, read: Buffer | null) => {
    appConns.track(sock);
    openTcp(o, sock, u.authority, read, { open() {}, refused: (code, reason) => refuse(sock, false, code, reason) });
  };
  return trackConnections(net.createServer({ allowHalfOpen: true }, (sock) => {
    if (u.opaque) {
      sock.pause();
      return tunnel(sock, null);
    }
    detect(sock, DETECT_MS, (kind, read) => (kind === 'http' ? toHttp(http, sock, read) : tunnel(sock, read)));
  }));
}

