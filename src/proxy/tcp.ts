// Opaque TCP on the outbound side: a connection for service:port becomes a mesh/1 tunnel stream to
// an endpoint of that service (balanced per connection, split by the route's default rule, over the
// same mTLS sessions as requests); one for a name outside the mesh goes through egress.ts. Entry
// points: `CONNECT host:port` on the outbound listener, and upstream listeners (tcp-listeners.ts).
import type net from 'node:net';
import type { RouteTable } from './layers/route.js';
import { routeConnection, type Routed } from './layers/route.js';
import { reconnect, type Reconnecting } from './layers/reconnect.js';
import { balanceConnections, type Balanced } from './layers/balance.js';
import type { MtlsTransport } from './layers/forward.js';
import type { Endpoint, Target } from './balancer.js';
import type { TcpStats } from './metrics.js';
import type { Egress } from './egress.js';
import type { ServiceRouter } from './routing.js';
import { hostOnly } from './layers/normalize.js';
import { ProxyError, stack, TOP, type Handler, type Transport } from './exchange.js';
import { MeshFault, type ErrorCode } from './errors.js';
import type { EndpointInfo } from '../model/snapshot.js';

export interface TcpOutbound {
  table: () => RouteTable;
  transport: MtlsTransport;
  egress: Egress;
  /** tcp_* stats of opaque connections to one endpoint (dst_* labels, tls="true", protocol="opaque"). */
  statsFor(ep: EndpointInfo): TcpStats;
}

/** What became of a connection: joined (the caller's socket now belongs to the tunnel), or refused with a status. */
export interface Opened {
  /** The tunnel is up: say so to the client if the protocol does (CONNECT's 200), then it is attached. */
  open(): void;
  refused(code: ErrorCode, reason: string): void;
}

/** One connection's passage through the connection stack, as an Exchange is a request's. */
class Conn implements Routed, Balanced, Reconnecting {
  router: ServiceRouter | null = null;
  target: Target | null = null;
  endpoint: Endpoint | null = null;
  /** A tunnel's opening says nothing of the endpoint's load: the balancer counts the success, not its time. */
  readonly freshConnection = true;
  sent = 0;
  attempts = 0;
  again = false;
  /** Why the current try failed, when no layer took it over: the client is told once the try is done. */
  failure: ProxyError | null = null;

  constructor(readonly sock: net.Socket, readonly authority: string, readonly host: string, readonly port: number, readonly head: Buffer | null, readonly cb: Opened) {}

  get gone(): boolean {
    return this.sock.destroyed;
  }

  refuse(err: ProxyError): void {
    this.cb.refused(err.code, err.reason);
  }
}

const statsCache = new WeakMap<Endpoint, TcpStats>();

/** The bottom of the connection stack: a tunnel stream to the endpoint's proxy; it decides nothing. */
function tunnelTo(o: TcpOutbound): Transport<Conn> {
  const self: Transport<Conn> = {
    send(c) {
      const ep = c.endpoint!;
      const t = o.transport.sessions.tunnel(ep.info.address, ep.info.port, ep.tls(o.transport.secureContext), c.authority, [], ep.tcp);
      if (t instanceof MeshFault) {
        if (!self.report.failed(c, t as Error, t.kind, false)) c.failure = new ProxyError(t.kind, t.message);
        return over(c);
      }
      const onGone = () => t.reset();
      c.sock.once('close', onGone);
      t.once('open', () => {
        c.sock.removeListener('close', onGone);
        self.report.response(c, 200);
        let stats = statsCache.get(ep);
        if (stats === undefined) statsCache.set(ep, (stats = o.statsFor(ep.info)));
        stats.track(t);
        c.cb.open();
        t.attach(c.sock, c.head);
        c.sock.resume();
      });
      // Before it opened, a failure comes as 'error', then 'close'; after, 'close' alone.
      t.once('error', (err: MeshFault) => {
        c.sock.removeListener('close', onGone);
        const e = ep.info;
        if (!self.report.failed(c, err as Error, err.kind, false)) c.failure = new ProxyError(err.kind, `${e.service}.${e.namespace} endpoint ${e.instance}: ${err.message}`);
      });
      t.once('close', () => over(c));
    },
    report: TOP,
  };
  const over = (c: Conn) => {
    self.report.done(c);
    const f = c.failure;
    c.failure = null;
    if (f !== null && !c.gone) c.refuse(f);
  };
  return self;
}

/** A connection for a name that is not in the mesh: plain to it (egress.ts), or refused. */
function outside(o: TcpOutbound): Handler<Conn> {
  return (c) => {
    const up = o.egress.connect(c.host, c.port);
    if (typeof up === 'string') return c.refuse(new ProxyError('denied', up));
    let joined = false;
    up.once('connect', () => {
      joined = true;
      c.cb.open();
      join(c.sock, up, c.head);
    });
    up.once('error', (err: NodeJS.ErrnoException) => {
      if (!joined) c.refuse(new ProxyError('connect', `cannot connect to ${c.authority} (outside the mesh): ${err.code ?? err.message}`));
    });
    c.sock.once('close', () => up.destroy());
  };
}

/** The connection stack, next to the request stack: route → reconnect → balance → tunnel, built once per outbound. */
const stacks = new WeakMap<TcpOutbound, Handler<Conn>>();

function connectionStack(o: TcpOutbound): Handler<Conn> {
  let s = stacks.get(o);
  if (s === undefined) stacks.set(o, (s = stack<Conn>([routeConnection(o.table, outside(o)), reconnect<Conn>(), balanceConnections<Conn>()], tunnelTo(o))));
  return s;
}

/**
 * Carries `sock` to `authority` (host:port): a tunnel to a meshed service, or egress. The socket
 * must be paused; it is resumed once joined. Bytes already read from it go in `head`.
 */
export function openTcp(o: TcpOutbound, sock: net.Socket, authority: string, head: Buffer | null, cb: Opened): void {
  const colon = authority.lastIndexOf(':');
  const port = Number(authority.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) return cb.refused('bad_request', `'${authority}' is not host:port`);
  connectionStack(o)(new Conn(sock, authority, hostOnly(authority), port, head, cb));
}

/** Joins two sockets both ways, half-closes included; either's error or reset ends both. */
export function join(a: net.Socket, b: net.Socket, head: Buffer | null): void {
  if (head !== null && head.length > 0) b.write(head);
  if (a.readableEnded) b.end();
  else a.pipe(b);
  b.pipe(a);
  const end = () => {
    a.destroy();
    b.destroy();
  };
  a.once('error', end);
  b.once('error', end);
  // A close before both directions ended (a reset, a destroy) is passed on.
  a.once('close', () => b.destroy());
  b.once('close', () => a.destroy());
  a.resume();
}
