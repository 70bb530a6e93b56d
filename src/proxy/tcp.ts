// Opaque TCP on the outbound side: a connection for service:port becomes a mesh/1 tunnel stream to
// an endpoint of that service (balanced per connection, split by the route's default rule, over the
// same mTLS sessions as requests); one for a name outside the mesh goes through egress.ts. Entry
// points: `CONNECT host:port` on the outbound listener, and upstream listeners (tcp-listeners.ts).
import type net from 'node:net';
import { pickBackend } from './routing.js';
import type { RouteTable } from './layers/route.js';
import type { MtlsTransport } from './layers/forward.js';
import type { Endpoint } from './balancer.js';
import type { TcpStats } from './metrics.js';
import type { Egress } from './egress.js';
import { hostOnly } from './layers/normalize.js';
import { MeshFault, neverSent, type ErrorCode } from './errors.js';
import type { EndpointInfo } from '../model/snapshot.js';
import type { Tunnel } from './wire/mux-tunnel.js';

export interface TcpOutbound {
  table: () => RouteTable;
  transport: MtlsTransport;
  egress: Egress;
  /** tcp_* stats of opaque connections to one endpoint (dst_* labels, tls="true", protocol="opaque"). */
  statsFor(ep: EndpointInfo): TcpStats;
}

/** Endpoints tried for one connection when the first cannot be reached (nothing was sent to it). */
const MAX_ATTEMPTS = 3;

/** What became of a connection: joined (the caller's socket now belongs to the tunnel), or refused with a status. */
export interface Opened {
  /** The tunnel is up: say so to the client if the protocol does (CONNECT's 200), then it is attached. */
  open(): void;
  refused(code: ErrorCode, reason: string): void;
}

const statsCache = new WeakMap<Endpoint, TcpStats>();

/**
 * Carries `sock` to `authority` (host:port): a tunnel to a meshed service, or egress. The socket
 * must be paused; it is resumed once joined. Bytes already read from it go in `head`.
 */
export function openTcp(o: TcpOutbound, sock: net.Socket, authority: string, head: Buffer | null, cb: Opened): void {
  const colon = authority.lastIndexOf(':');
  const port = Number(authority.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) return cb.refused('bad_request', `'${authority}' is not host:port`);
  const host = hostOnly(authority);
  const router = o.table().hosts.get(host);
  if (router === undefined) {
    const up = o.egress.connect(host, port);
    if (typeof up === 'string') return cb.refused('denied', up);
    let joined = false;
    up.once('connect', () => {
      joined = true;
      cb.open();
      join(sock, up, head);
    });
    up.once('error', (err: NodeJS.ErrnoException) => {
      if (!joined) cb.refused('connect', `cannot connect to ${authority} (outside the mesh): ${err.code ?? err.message}`);
    });
    sock.once('close', () => up.destroy());
    return;
  }
  // Opaque traffic has no request to match: the service's default rule (its split) applies.
  const rules = router.rules;
  let target = router.target;
  for (let i = 0; i < rules.length; i++) if (rules[i]!.matches === null) target = pickBackend(rules[i]!);
  const tryOnce = (attempt: number): void => {
    const ep = target.pick();
    if (ep === null) {
      const why = target.unavailable();
      return cb.refused(why.code, why.reason);
    }
    ep.inflight++;
    const t = o.transport.sessions.tunnel(ep.info.address, ep.info.port, ep.tls(o.transport.secureContext), authority, [], ep.tcp);
    if (t instanceof MeshFault) {
      ep.inflight--;
      return cb.refused(t.kind, t.message);
    }
    const onGone = () => t.reset();
    sock.once('close', onGone);
    t.once('close', () => ep.inflight--);
    t.once('open', () => {
      ep.succeeded(-1, Date.now());
      sock.removeListener('close', onGone);
      let stats = statsCache.get(ep);
      if (stats === undefined) statsCache.set(ep, (stats = o.statsFor(ep.info)));
      stats.track(t);
      cb.open();
      t.attach(sock, head);
      sock.resume();
    });
    t.once('error', (err: MeshFault) => {
      sock.removeListener('close', onGone);
      if (sock.destroyed) return;
      const unsent = neverSent(err.kind);
      if (unsent) ep.failed(Date.now(), err.kind !== 'refused');
      if (unsent && attempt < MAX_ATTEMPTS) return tryOnce(attempt + 1);
      const ep2 = ep.info;
      cb.refused(err.kind, `${ep2.service}.${ep2.namespace} endpoint ${ep2.instance}: ${err.message}`);
    });
  };
  tryOnce(1);
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
