// The outbound listener: the app's plain HTTP in (Host header or an absolute-form HTTP_PROXY
// request names the service), mutual TLS out to a chosen endpoint of that service.
import { Exchange, stack, type Handler } from './exchange.js';
import type { Telemetry } from './telemetry.js';
import { normalize } from './layers/normalize.js';
import { observe } from './layers/observe.js';
import { route, type RouteTable } from './layers/route.js';
import { fault } from './layers/fault.js';
import { retry } from './layers/retry.js';
import { timeout } from './layers/timeout.js';
import { balance } from './layers/balance.js';
import { mtlsForward, mtlsUpgrade, type MtlsTransport } from './layers/forward.js';
import type { ClientShares } from './layers/fair.js';
import type { H1Server } from './wire/h1-server.js';
import { createHttpServer } from './wire/h2-server.js';
import { upgradeExchange } from './upgrade.js';
import type { MetricsRegistry } from './metrics.js';

/**
 * `shares` (the ingress) bounds each client address's requests in flight; `outside` takes names not in the mesh
 * (egress), `outsideUpgrade` their upgrades.
 */
export function createOutboundServer(table: () => RouteTable, transport: MtlsTransport, metrics: MetricsRegistry, tel: Telemetry, shares?: ClientShares, outside?: Handler, outsideUpgrade?: Handler): H1Server {
  const layers = (elsewhere?: Handler) => {
    const l = [normalize, observe(tel, 'outbound'), route(table, elsewhere), fault, retry, timeout, balance];
    if (shares) l.unshift(shares.layer);
    return l;
  };
  const handler = stack(layers(outside), mtlsForward(transport));
  // Upgrades run the same layers up to their own last step: an upgrade stream on mesh/1, which the peer's inbound
  // runs its HTTP layers on (host-check, authorize, observe) before it joins the app.
  const upgrade = stack(layers(outsideUpgrade), mtlsUpgrade(transport));
  // Requests refused before routing (bad requests, unknown services) are counted here.
  const unrouted = metrics.requests({ direction: 'outbound', dst_service: '' });
  const tcp = metrics.tcp({ direction: 'outbound', peer: 'src', tls: 'false' });
  // HTTP/1.1 and HTTP/2 on one port: each h2 stream runs the same stack as an HTTP/1.1 request.
  return createHttpServer({
    request: (req, res) => handler(new Exchange(req, res, unrouted)),
    upgrade: (req, socket, head) => upgrade(upgradeExchange(req, socket, head, unrouted)),
  }, (sock) => {
    tcp.track(sock);
    shares?.track(sock);
  });
}
