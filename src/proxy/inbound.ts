// The inbound listener: mutual TLS in from other proxies (the peer's SPIFFE identity checked on
// every connection), plain HTTP out to the app on localhost.
import net from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { Duplex } from 'node:stream';
import { verifyPeer, formatIdentity } from '../identity/spiffe.js';
import { Exchange, ProxyError, respondError, stack, TOP } from './exchange.js';
import { serveH1, trackConnections, type H1Handlers, type Req, type Res } from './wire/h1-server.js';
import { Pool } from './wire/h1-client.js';
import { ALPN } from './wire/mux-frames.js';
import { serveMux, type MuxHandlers, type TunnelHandler } from './wire/mux-server.js';
import { tunnelsToApp } from './tcp-inbound.js';
import { Gate } from './gate.js';
import { hostCheck, type AppPorts } from './layers/host-check.js';
import { authorize, type AuthorizeOptions } from './layers/authorize.js';
import { observe } from './layers/observe.js';
import { retry } from './layers/retry.js';
import { admit } from './layers/admit.js';
import { timeout } from './layers/timeout.js';
import { toApp, type AppClient } from './layers/to-app.js';
import { H2Pool } from './wire/h2-client.js';
import { H2Front, sniffPreface } from './wire/h2-server.js';
import type { AppProtocol } from '../model/app-protocol.js';
import { plainUpgrade, upgradeExchange } from './upgrade.js';
import type { Relaying } from './relay.js';
import type { UpgradeDown } from './wire/mux-tunnel.js';
import type { IdentityManager } from './identity.js';
import type { MetricsRegistry, RequestStats } from './metrics.js';
import type { Telemetry } from './telemetry.js';

export interface InboundOptions extends AppPorts, AuthorizeOptions {
  metrics: MetricsRegistry;
  telemetry: Telemetry;
  identity: IdentityManager;
  trustDomain: string;
  /**
   * Also take plaintext on the same port (Kubernetes: iptables sends every inbound connection
   * here, kubelet probes and unmeshed clients among them). They have no identity: policy decides.
   */
  plaintext?: boolean;
  /** App connections open at once (one per request in flight), and requests that may wait for one; beyond: 503. */
  appConnections?: { limit: number; queue: number };
  /** A TLS handshake (or a plaintext client's first byte) must come within this; default HANDSHAKE_MS. */
  handshakeMs?: number;
  /** What the app serves (default http1): HTTP/1.1 or HTTP/2 cleartext (gRPC servers). */
  appProtocol?: AppProtocol;
  /** Kubernetes: app ports whose Service port declares HTTP/2 or gRPC (swapped on config pushes). */
  h2cPorts?: () => ReadonlySet<number>;
  log?: (msg: string) => void;
}

export const APP_CONNECTIONS = { limit: 256, queue: 1024 };
/** A TLS handshake not done by then is dropped (Node's default is 120 s: a cheap way to hold sockets). */
export const HANDSHAKE_MS = 10_000;

const PEER = Symbol('mesh.peer');
const STATS = Symbol('mesh.stats');
const EXPIRES = Symbol('mesh.expires');
type PeerSocket = TLSSocket & { [PEER]?: string; [STATS]?: RequestStats; [EXPIRES]?: number };

/** The client for the app's protocol; per port where a Kubernetes Service declares it. */
function appClient(o: InboundOptions, h1: Pool, h2: H2Pool): AppClient {
  if (o.appProtocol === 'h2c') return h2;
  const ports = o.h2cPorts;
  if (ports === undefined) return h1;
  return { request: (r) => (ports().has(r.port) ? h2.request(r) : h1.request(r)) };
}

export function createInboundServer(o: InboundOptions): net.Server {
  // Idle connections close before a Node app's default 5 s keep-alive would close them under us.
  const appPool = new Pool({ idleMs: 4_000, maxIdle: 64 });
  // One HTTP/2 session per app port, opened on first use; its streams are bounded by the gate below.
  const h2Pool = new H2Pool({ idleMs: 30_000 });
  const app = appClient(o, appPool, h2Pool);
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
      if (sock.alpnProtocol === ALPN) serveMux(sock, muxHandlers);
      else serveH1(sock, tlsHandlers);
    } catch (err) {
      o.log?.(`inbound: refused a connection: ${(err as Error).message}`);
      sock.destroy();
    }
  });
  // With a listener here Node leaves the socket open (a stalled handshake stays forever): cut it.
  server.on('tlsClientError', (_err, sock) => sock.destroy());

  const cap = o.appConnections ?? APP_CONNECTIONS;
  const gate = new Gate(cap.limit, cap.queue, 'app connections');
  const checked = hostCheck(o);
  const authorized = authorize({ ...o, denied: (ex, reason) => o.telemetry.denied(ex, reason) });
  // An app that closed a kept-alive connection as we reused it processed nothing: retry sends again. A gRPC call's
  // grpc-timeout is enforced here too, for callers whose sidecar is not ours (or is old); it runs above the gate, so
  // an answer it gives itself never holds an app connection.
  const handler = stack([checked, authorized, observe(o.telemetry, 'inbound'), retry, timeout, admit(gate)], toApp(app));
  const handle = (req: Req, res: Res, peer: string, stats: RequestStats): void => {
    const ex = new Exchange(req, res, stats);
    ex.peer = peer;
    handler(ex);
  };

  // An upgraded connection holds an app connection for as long as it lives: it counts against the same bound.
  const appUpgrade: Relaying = {
    send(ex) {
      const { socket } = ex.res;
      if (!gate.hold(socket)) return respondError(ex, new ProxyError('overloaded', `app connections: ${gate.active} in use, none left for an upgrade from this client`));
      ex.res.once('close', () => gate.release(socket));
      plainUpgrade(ex, '127.0.0.1', ex.appPort, appUpgrade);
    },
    report: TOP,
    describe: (ex) => `app on 127.0.0.1:${ex.appPort}`,
  };
  // Upgrades run the request's layers: the decision on the upgrade request covers the whole upgraded connection.
  const upgrader = stack([checked, authorized, observe(o.telemetry, 'inbound')], appUpgrade);
  const upgrade = (ex: Exchange, peer: string): void => {
    ex.upgrade = true;
    ex.peer = peer;
    upgrader(ex);
  };

  // TCP tunnels (CONNECT streams on mesh/1): authorized by identity and port, one app connection each.
  const toAppTcp = tunnelsToApp({ metrics: o.metrics, gate, authz: o, ports: o, denied: (authority, peer, reason) => o.telemetry.connectionDenied(authority, peer, reason) });
  const tunnels: TunnelHandler = (t, authority, sock) => {
    const s = sock as PeerSocket;
    if (Date.now() > s[EXPIRES]!) return void sock.destroy();
    toAppTcp(t, authority, s[PEER]!, sock);
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
      upgrade(upgradeExchange(req, socket, head, sock[STATS]!), sock[PEER]!);
    },
  };
  const muxHandlers: MuxHandlers = {
    ...tlsHandlers,
    tunnel: tunnels,
    upgradeStream(req: Req, res: UpgradeDown) {
      const sock = res.socket as PeerSocket;
      if (Date.now() > sock[EXPIRES]!) return void sock.destroy();
      upgrade(new Exchange(req, res, sock[STATS]!), sock[PEER]!);
    },
  };

  o.identity.on('rotated', () => server.setSecureContext({ ...o.identity.serverOptions() }));
  server.on('close', () => {
    appPool.destroy();
    h2Pool.destroy();
  });
  if (!o.plaintext) return server;

  // One port for all: a TLS handshake starts with 0x16, HTTP/2 cleartext (an unmeshed gRPC or h2c client) with its
  // preface, anything else is taken as HTTP/1.1. Plaintext has no identity: each request, or each stream, is
  // authorized as an unauthenticated caller, and an identity header it sends is dropped as on every path.
  const plainStats = o.metrics.requests({ direction: 'inbound', client_id: '', tls: 'false' });
  const plainTcp = o.metrics.tcp({ direction: 'inbound', peer: 'src', tls: 'false' });
  const plainHandlers: H1Handlers = {
    request: (req, res) => handle(req, res, '', plainStats),
    upgrade: (req, socket, head) => upgrade(upgradeExchange(req, socket, head, plainStats), ''),
  };
  const plainH2 = new H2Front(plainHandlers.request);
  const front = trackConnections(net.createServer((sock) => {
    // A connection that never says a word is dropped like a stalled handshake.
    sniffPreface(sock, o.handshakeMs ?? HANDSHAKE_MS, (first, h2) => {
      // TLS reads a socket's handle directly and would never see the bytes read here: it gets
      // a stream over the socket, which starts with them.
      if (first[0] === 0x16) {
        sock.on('error', () => sock.destroy());
        server.emit('connection', Duplex.from({ readable: sock, writable: sock }));
      } else {
        plainTcp.track(sock);
        gate.attach(sock, '');
        if (h2) plainH2.accept(sock);
        else serveH1(sock, plainHandlers);
      }
      sock.resume();
    });
  }));
  front.on('close', () => {
    server.closeAllConnections();
    front.closeAllConnections();
    appPool.destroy();
    h2Pool.destroy();
  });
  return front;
}
