// The inbound listener: mutual TLS in from other proxies (the peer's SPIFFE identity checked on
// every connection), plain HTTP out to the app on localhost.
import http from 'node:http';
import net from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { Duplex } from 'node:stream';
import { verifyPeer, formatIdentity } from '../identity/spiffe.js';
import { Exchange, ProxyError, respondError } from './exchange.js';
import { requestHeaders } from './wire/h1-headers.js';
import { readTarget, requestTarget } from './layers/normalize.js';
import { serveH1, trackConnections, type H1Handlers, type Req, type Res } from './wire/h1-server.js';
import { Pool } from './wire/h1-client.js';
import { ALPN } from './wire/mux-frames.js';
import { serveMux } from './wire/mux-server.js';
import { relay, type RelayHooks } from './relay.js';
import { Gate } from './gate.js';
import { refuseUpgrade, relayUpgrade } from './upgrade.js';
import type { IdentityManager } from './identity.js';
import type { MetricsRegistry, RequestStats } from './metrics.js';
import type { Telemetry } from './telemetry.js';
import type { AuthzRequest, CompiledPolicy } from '../model/policy.js';

export interface InboundOptions {
  /** The workload's own service and namespace: what policy is checked against. */
  namespace: string;
  service: string;
  /** Kubernetes: the Services that select this pod (swapped on config pushes); policy checks them instead of service. */
  services?: () => readonly string[] | undefined;
  /** The current compiled authorization policy (swapped on config pushes). */
  policy: () => CompiledPolicy;
  metrics: MetricsRegistry;
  telemetry: Telemetry;
  identity: IdentityManager;
  trustDomain: string;
  appPort: number;
  /**
   * Other app ports a request may name in its Host (Kubernetes: the pod's other declared ports).
   * Peers dial the default inbound port whatever the service port, so `shop:9090` says where it goes.
   */
  hostPorts?: ReadonlySet<number>;
  /**
   * The workload's Service ports → the ports they target (Kubernetes; swapped on config pushes), so `shop:80` goes
   * to the app port behind Service port 80. Only used with hostPorts.
   */
  servicePorts?: () => ReadonlyMap<number, number>;
  /**
   * Also take plaintext on the same port (Kubernetes: iptables sends every inbound connection
   * here, kubelet probes and unmeshed clients among them). They have no identity: policy decides.
   */
  plaintext?: boolean;
  /** App connections open at once (one per request in flight), and requests that may wait for one; beyond: 503. */
  appConnections?: { limit: number; queue: number };
  /** A TLS handshake (or a plaintext client's first byte) must come within this; default HANDSHAKE_MS. */
  handshakeMs?: number;
  log?: (msg: string) => void;
}

export const APP_CONNECTIONS = { limit: 256, queue: 1024 };
/** A TLS handshake not done by then is dropped (Node's default is 120 s: a cheap way to hold sockets). */
export const HANDSHAKE_MS = 10_000;

const PEER = Symbol('mesh.peer');
const STATS = Symbol('mesh.stats');
const EXPIRES = Symbol('mesh.expires');
type PeerSocket = TLSSocket & { [PEER]?: string; [STATS]?: RequestStats; [EXPIRES]?: number };

const appHooks: RelayHooks = {
  done() {},
  response: () => false,
  failed(ex, err, _connect, reused) {
    // The app closed an idle keep-alive connection as we reused it: nothing was processed.
    return reused && err.code === 'ECONNRESET' && ex.replayable && ex.attempts++ < 2 ? 'retry' : 'fail';
  },
  describe: (ex) => `app on 127.0.0.1:${ex.appPort}`,
};

/**
 * The app port a request goes to: the one its Host's port targets (a Service port maps to its targetPort, any other
 * port stands for itself), if the pod declares it, else the listener's. A Host without a port is port 80 for the
 * Service port map only.
 */
function appPortFor(o: InboundOptions, host: string | undefined): number {
  if (o.hostPorts === undefined || host === undefined) return o.appPort;
  const colon = host.lastIndexOf(':');
  const bare = colon < 0 || host.endsWith(']');
  const p = bare ? 80 : Number(host.slice(colon + 1));
  const target = o.servicePorts?.().get(p) ?? (bare ? o.appPort : p);
  return o.hostPorts.has(target) ? target : o.appPort;
}

export function createInboundServer(o: InboundOptions): net.Server {
  // Idle connections close before a Node app's default 5 s keep-alive would close them under us.
  const appPool = new Pool({ idleMs: 4_000, maxIdle: 64 });
  const server = trackConnections(tls.createServer({
    ...o.identity.serverOptions(),
    requestCert: true,
    rejectUnauthorized: true,
    handshakeTimeout: o.handshakeMs ?? HANDSHAKE_MS,
    // Other proxies speak mesh/1; anything else (curl, a raw TLS client) gets HTTP/1.1.
    ALPNProtocols: [ALPN, 'http/1.1'],
  }));
  const tcp = o.metrics.tcp({ direction: 'inbound', peer: 'src', tls: 'true' });
  server.on('secureConnection', (sock: PeerSocket) => {
    try {
      const cert = sock.getPeerX509Certificate();
      const peer = formatIdentity(verifyPeer(cert, o.trustDomain));
      sock[PEER] = peer;
      sock[EXPIRES] = Date.parse(cert!.validTo);
      // Stats per caller identity, looked up once per connection rather than per request.
      sock[STATS] = o.metrics.requests({ direction: 'inbound', client_id: peer, tls: 'true' });
      gate.attach(sock, peer);
      tcp.track(sock);
      if (sock.alpnProtocol === ALPN) serveMux(sock, tlsHandlers);
      else serveH1(sock, tlsHandlers);
    } catch (err) {
      o.log?.(`inbound: refused a connection: ${(err as Error).message}`);
      sock.destroy();
    }
  });
  // With a listener here Node leaves the socket open (a stalled handshake stays forever): cut it.
  server.on('tlsClientError', (_err, sock) => sock.destroy());

  const toApp = (ex: Exchange): void => {
    const up = appPool.request({ host: '127.0.0.1', port: ex.appPort, method: ex.req.method, path: ex.path, headers: ex.headers });
    relay(ex, up, hooks);
  };
  const cap = o.appConnections ?? APP_CONNECTIONS;
  const gate = new Gate(cap.limit, cap.queue, toApp, 'app connections');
  const hooks: RelayHooks = { ...appHooks, done: (ex) => gate.leave(ex) };
  const admit = (ex: Exchange): void => gate.enter(ex);

  // One request object reused for every check: the check is synchronous and allocates nothing.
  const authz: AuthzRequest = { namespace: o.namespace, toService: o.service, clientIdentity: null, port: o.appPort, path: '/' };
  const authorize = (peer: string | null, path: string, port: number) => {
    authz.clientIdentity = peer;
    authz.path = path;
    authz.port = port;
    authz.toServices = o.services?.();
    return o.policy().check(authz);
  };

  const handle = (req: Req, res: Res, peer: string | null, stats: RequestStats): void => {
    const ex = new Exchange(req, res, stats);
    ex.peer = peer ?? '';
    // The verified peer identity replaces anything a client sent under that name.
    const t = readTarget(ex, peer);
    if (t === null) return;
    ex.appPort = appPortFor(o, t.authority);
    const decision = authorize(peer, ex.path, ex.appPort);
    if (!decision.allowed) {
      ex.stats.denied();
      return respondError(ex, new ProxyError(403, decision.reason));
    }
    ex.stats.allowed();
    o.telemetry.traceContext(ex, 'server');
    o.telemetry.watch(ex, 'inbound');
    ex.rebalance = admit;
    admit(ex);
  };

  const upgrade = (req: Req, socket: net.Socket, head: Buffer, peer: string | null, stats: RequestStats): void => {
    const t = requestTarget(req.url, req.host, req.hosts, req.minor);
    if (typeof t === 'string') return refuseUpgrade(socket, 400, t);
    const appPort = appPortFor(o, t.authority);
    // The decision on the upgrade request is the decision for everything the upgraded connection carries
    // (h1-server only hands over upgrades to a protocol that is not HTTP).
    const decision = authorize(peer, t.path, appPort);
    if (!decision.allowed) {
      stats.denied();
      return refuseUpgrade(socket, 403, decision.reason);
    }
    // An upgraded connection holds an app connection for as long as it lives: it counts against the same bound.
    if (!gate.hold(socket)) return refuseUpgrade(socket, 503, `app connections: ${gate.active} in use, none left for an upgrade from this client`);
    stats.allowed();
    const headers = requestHeaders(req, t.authority, peer, true);
    const up = http.request({
      agent: false,
      host: '127.0.0.1',
      port: appPort,
      method: req.method,
      path: t.path,
      headers: headers as unknown as Record<string, string>,
      setHost: false,
    });
    relayUpgrade(socket, head, up, () => gate.release(socket));
  };

  const tlsHandlers: H1Handlers = {
    request(req, res) {
      const sock = req.socket as PeerSocket;
      // A long-lived session must not outlive the certificate it was opened with: the peer
      // reconnects (and shows its renewed certificate) or is refused at the handshake.
      if (Date.now() > sock[EXPIRES]!) {
        sock.destroy();
        return;
      }
      handle(req, res, sock[PEER]!, sock[STATS]!);
    },
    upgrade(req, socket, head) {
      const sock = socket as PeerSocket;
      upgrade(req, socket, head, sock[PEER]!, sock[STATS]!);
    },
  };

  o.identity.on('rotated', () => server.setSecureContext({ ...o.identity.serverOptions() }));
  server.on('close', () => appPool.destroy());
  if (!o.plaintext) return server;

  // One port for both: a TLS handshake starts with 0x16; anything else is taken as plain HTTP.
  const plainStats = o.metrics.requests({ direction: 'inbound', client_id: '', tls: 'false' });
  const plainTcp = o.metrics.tcp({ direction: 'inbound', peer: 'src', tls: 'false' });
  const plainHandlers: H1Handlers = {
    request: (req, res) => handle(req, res, null, plainStats),
    upgrade: (req, socket, head) => upgrade(req, socket, head, null, plainStats),
  };
  const front = trackConnections(net.createServer((sock) => {
    // A connection that never says a word is dropped like a stalled handshake.
    const silent = () => sock.destroy();
    sock.setTimeout(o.handshakeMs ?? HANDSHAKE_MS);
    sock.once('timeout', silent);
    sock.once('data', (first: Buffer) => {
      sock.setTimeout(0);
      sock.removeListener('timeout', silent);
      sock.pause();
      sock.unshift(first);
      // TLS reads a socket's handle directly and would never see the bytes read here: it gets
      // a stream over the socket, which starts with them.
      if (first[0] === 0x16) server.emit('connection', Duplex.from({ readable: sock, writable: sock }));
      else {
        plainTcp.track(sock);
        gate.attach(sock, '');
        serveH1(sock, plainHandlers);
      }
      sock.resume();
    });
    sock.on('error', () => sock.destroy());
  }));
  front.on('close', () => {
    server.closeAllConnections();
    front.closeAllConnections();
    appPool.destroy();
  });
  return front;
}
