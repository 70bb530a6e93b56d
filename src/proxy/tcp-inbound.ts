// The inbound end of a TCP tunnel: a peer's CONNECT stream is authorized by the peer's verified
// identity and the app port it names (policy rules with a path never match a connection), takes
// one of the bounded app connections for its whole life, and is joined to a connection to the app
// on 127.0.0.1.
import net from 'node:net';
import { TUNNEL_READS, tunnelReads, type Tunnel } from './wire/mux-tunnel.js';
import type { Gate } from './gate.js';
import type { MetricsRegistry, TcpStats } from './metrics.js';
import type { AuthzRequest } from '../model/policy.js';
import type { AuthorizeOptions } from './layers/authorize.js';
import { appPortFor, type AppPorts } from './layers/host-check.js';

export interface TunnelInbound {
  metrics: MetricsRegistry;
  /** What policy is checked against (as for requests; a connection has no path). */
  authz: AuthorizeOptions;
  /** The app port an authority's port stands for (as a request's Host). */
  ports: AppPorts;
  gate: Gate;
  /** Hears a connection policy refuses (mesh tap shows it with its reason). */
  denied?(authority: string, peer: string, reason: string): void;
}

/** The app must accept a connection within this (it is on the same host: a slow accept is a stuck app). */
const APP_CONNECT_MS = 10_000;

interface PeerStats {
  tcp: TcpStats;
  allow: { inc(): void };
  deny: { inc(): void };
}

export function tunnelsToApp(d: TunnelInbound): (t: Tunnel, authority: string, peer: string, peerSock: net.Socket) => void {
  // Per verified caller identity (identities are few), made once.
  const byPeer = new Map<string, PeerStats>();
  const statsOf = (peer: string): PeerStats => {
    let s = byPeer.get(peer);
    if (s === undefined) {
      const labels = { direction: 'inbound', client_id: peer, tls: 'true' };
      byPeer.set(peer, (s = {
        tcp: d.metrics.tcp({ ...labels, peer: 'src', protocol: 'opaque' }),
        allow: d.metrics.counter('inbound_tcp_authz_allow_total', 'TCP connections allowed by policy.', labels),
        deny: d.metrics.counter('inbound_tcp_authz_deny_total', 'TCP connections denied by policy.', labels),
      }));
    }
    return s;
  };

  // One request object reused for every check, as the request path does.
  const authz: AuthzRequest = { namespace: d.authz.namespace, toService: d.authz.service, clientIdentity: null, port: 0, path: null };
  return (t, authority, peer, peerSock) => {
    const port = appPortFor(d.ports, authority);
    const s = statsOf(peer);
    authz.clientIdentity = peer;
    authz.port = port;
    authz.toServices = d.authz.services?.();
    const decision = d.authz.policy().check(authz);
    if (!decision.allowed) {
      s.deny.inc();
      d.denied?.(authority, peer, decision.reason);
      return t.refuse(403, decision.reason);
    }
    if (!d.gate.hold(peerSock)) return t.refuse(503, `app connections: ${d.gate.active} in use, none left for a TCP connection from this client`);
    s.allow.inc();
    const app = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true, onread: TUNNEL_READS });
    tunnelReads(app, t);
    app.setTimeout(APP_CONNECT_MS, () => app.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })));
    app.once('connect', () => {
      app.setTimeout(0);
      s.tcp.track(t);
      t.accept(app);
    });
    app.once('error', (err: NodeJS.ErrnoException) => {
      if (!t.open) t.refuse(502, `cannot connect to the app on 127.0.0.1:${port}: ${err.code ?? err.message}`);
    });
    app.once('close', () => d.gate.release(peerSock));
    // The peer gave up (or its connection failed) while the app connection was being made.
    t.once('close', () => {
      if (!t.open) app.destroy();
    });
  };
}
