// The outbound listener: the app's plain HTTP in (Host header or an absolute-form HTTP_PROXY
// request names the service), mutual TLS out to a chosen endpoint of that service.
import https from 'node:https';
import type { Socket } from 'node:net';
import { Exchange, stack, type Layer } from './exchange.js';
import type { Telemetry } from './telemetry.js';
import { hostOnly, normalize, requestTarget } from './layers/normalize.js';
import { route, type RouteTable } from './layers/route.js';
import { balance } from './layers/balance.js';
import { fault } from './layers/fault.js';
import { mtlsForward, type MtlsTransport } from './layers/forward.js';
import type { ClientShares } from './layers/fair.js';
import { requestHeaders } from './wire/h1-headers.js';
import type { H1Server, Req } from './wire/h1-server.js';
import { createHttpServer } from './wire/h2-server.js';
import { refuseUpgrade, relayUpgrade } from './upgrade.js';
import { pickBackend } from './routing.js';
import type { MetricsRegistry } from './metrics.js';

/** `shares` (the ingress) bounds each client address's requests in flight. */
export function createOutboundServer(table: () => RouteTable, transport: MtlsTransport, metrics: MetricsRegistry, tel: Telemetry, shares?: ClientShares): H1Server {
  const observe: Layer = (next) => (ex) => {
    tel.traceContext(ex, 'client');
    tel.watch(ex, 'outbound');
    next(ex);
  };
  const layers = [normalize, observe, route(table), fault, balance];
  if (shares) layers.unshift(shares.layer);
  const handler = stack(layers, mtlsForward(transport));
  // Requests refused before routing (bad requests, unknown services) are counted here.
  const unrouted = metrics.requests({ direction: 'outbound', dst_service: '' });
  const tcp = metrics.tcp({ direction: 'outbound', peer: 'src', tls: 'false' });
  const upgrade = (req: Req, socket: Socket, head: Buffer) => {
    const rt = requestTarget(req.url, req.host, req.hosts, req.minor);
    if (typeof rt === 'string') return refuseUpgrade(socket, 400, rt);
    const { authority, path: url } = rt;
    const t = table();
    const router = t.hosts.get(hostOnly(authority)) ?? t.fallback;
    if (!router) return refuseUpgrade(socket, 502, `unknown service ${hostOnly(authority)}: not in the mesh`);
    const rule = router.rules.length ? router.match(req, url) : null;
    const target = rule ? pickBackend(rule) : router.target;
    const ep = target.pick();
    if (!ep) return refuseUpgrade(socket, 503, target.unavailableReason());
    ep.inflight++;
    const up = https.request({
      agent: false,
      host: ep.info.address,
      port: ep.info.port,
      method: req.method,
      path: url,
      headers: requestHeaders(req, authority, null, true) as unknown as Record<string, string>,
      servername: ep.servername,
      checkServerIdentity: ep.checkServerIdentity,
      secureContext: transport.secureContext,
      setHost: false,
    } as https.RequestOptions);
    relayUpgrade(socket, head, up, () => ep.inflight--);
  };
  // HTTP/1.1 and HTTP/2 on one port: each h2 stream runs the same stack as an HTTP/1.1 request.
  return createHttpServer({ request: (req, res) => handler(new Exchange(req, res, unrouted)), upgrade }, (sock) => {
    tcp.track(sock);
    shares?.track(sock);
  });
}
