// Destinations outside the mesh (egress): a request or connection for a name that is not a meshed
// service passes through plain, as Linkerd does and Istio's ALLOW_ANY, unless the namespace's
// policy says `egress: deny` (Istio's REGISTRY_ONLY): then 403, or the connection is closed.
// Counted under dst_service="<host>" and dst_mesh="false", with a bounded number of hosts.
import net from 'node:net';
import { ProxyError, respondError, TOP, type Exchange } from './exchange.js';
import { relay, type Relaying } from './relay.js';
import { Pool } from './wire/h1-client.js';
import type { MetricsRegistry, RequestStats, TcpStats } from './metrics.js';
import { plainUpgrade } from './upgrade.js';

/** Hosts counted by name; further ones share one series, so a client cannot grow the metrics without bound. */
export const MAX_EGRESS_HOSTS = 100;
export const OTHER_HOSTS = '(other)';

interface HostStats {
  requests: RequestStats;
  tcp: TcpStats;
  /** Opaque connections (CONNECT, upstream listeners), apart from the pooled HTTP ones. */
  opaque: TcpStats;
}

/** Plain to the host: no layer above acts on how it went (no retries outside the mesh); failures answer with their code. */
const plain: Relaying = {
  send() {},
  report: TOP,
  describe: (ex) => `${ex.host} (outside the mesh)`,
};

export class Egress {
  private readonly hosts = new Map<string, HostStats>();
  private readonly pool = new Pool({ idleMs: 4_000, maxIdle: 16 });

  constructor(private readonly metrics: MetricsRegistry, readonly namespace: string, private readonly allowed: () => boolean) {}

  private statsOf(host: string): HostStats {
    let s = this.hosts.get(host);
    if (s !== undefined) return s;
    if (this.hosts.size >= MAX_EGRESS_HOSTS) return this.statsOf(OTHER_HOSTS);
    const labels = { direction: 'outbound', dst_service: host, dst_mesh: 'false', tls: 'false' };
    this.hosts.set(host, (s = {
      requests: this.metrics.requests(labels),
      tcp: this.metrics.tcp({ ...labels, peer: 'dst' }),
      opaque: this.metrics.tcp({ ...labels, peer: 'dst', protocol: 'opaque' }),
    }));
    return s;
  }

  /** Why traffic to `host` is refused, or null when it may pass. */
  refusal(host: string): string | null {
    if (this.allowed()) return null;
    return `${host} is not a mesh service, and egress is denied in namespace ${this.namespace} ('mesh policy egress allow -n ${this.namespace}' lets it out)`;
  }

  /** An HTTP request for a name that is not in the mesh: plain to that host, or 403. */
  readonly http = (ex: Exchange): void => {
    const s = this.statsOf(ex.host);
    ex.stats = s.requests;
    const why = this.refusal(ex.host);
    if (why !== null) return respondError(ex, new ProxyError('denied', why));
    const { host, port } = splitAuthority(ex.authority, 80);
    if (port < 0) return respondError(ex, new ProxyError('bad_request', `invalid port in ${ex.req.host ?? ex.host}`));
    const up = this.pool.request({ host, port, method: ex.req.method, path: ex.path, headers: ex.headers, tcp: s.tcp });
    relay(ex, up, plain);
  };

  /** An upgrade request for a name that is not in the mesh: plain HTTP/1.1 to that host, or 403. */
  readonly upgrade = (ex: Exchange): void => {
    ex.stats = this.statsOf(ex.host).requests;
    const why = this.refusal(ex.host);
    if (why !== null) return respondError(ex, new ProxyError('denied', why));
    const { host, port } = splitAuthority(ex.authority, 80);
    if (port < 0) return respondError(ex, new ProxyError('bad_request', `invalid port in ${ex.req.host ?? ex.host}`));
    plainUpgrade(ex, host, port, plain);
  };

  /** A TCP connection for a name that is not in the mesh: the connection to it, or the reason it is refused. */
  connect(host: string, port: number): net.Socket | string {
    const why = this.refusal(host);
    if (why !== null) return why;
    const sock = net.connect({ host: bare(host), port, allowHalfOpen: true });
    this.statsOf(host).opaque.track(sock);
    return sock;
  }

  close(): void {
    this.pool.destroy();
  }
}

function bare(host: string): string {
  return host.startsWith('[') ? host.slice(1, -1) : host;
}

/** host and port of an authority (host lower-case; `dflt` when it names no port). */
export function splitAuthority(authority: string, dflt: number): { host: string; port: number } {
  const a = authority.toLowerCase();
  const close = a.lastIndexOf(']');
  const colon = a.lastIndexOf(':');
  if (colon > close) {
    const port = Number(a.slice(colon + 1));
    return { host: bare(a.slice(0, colon)), port: Number.isInteger(port) && port > 0 && port < 65536 ? port : -1 };
  }
  return { host: bare(a), port: dflt };
}
