// The outbound listener: the app's plain HTTP in (Host header or an absolute-form HTTP_PROXY
// request names the service), mutual TLS out to a chosen endpoint of that service.
import https from 'node:https';
import { Exchange, stack, TOP, type Handler, type Transport } from './exchange.js';
import type { Telemetry } from './telemetry.js';
import { normalize } from './layers/normalize.js';
import { observe } from './layers/observe.js';
import { route, type RouteTable } from './layers/route.js';
import { fault } from './layers/fault.js';
import { retry } from './layers/retry.js';
import { timeout } from './layers/timeout.js';
import { balance } from './layers/balance.js';
import { mtlsForward, type MtlsTransport } from './layers/forward.js';
import type { ClientShares } from './layers/fair.js';
import type { H1Server } from './wire/h1-server.js';
import { createHttpServer } from './wire/h2-server.js';
import { relayUpgrade, upgradeExchange } from './upgrade.js';
import type { MetricsRegistry } from './metrics.js';

/** `shares` (the ingress) bounds each client address's requests in flight; `outside` takes names not in the mesh (egress). */
export function createOutboundServer(table: () => RouteTable, transport: MtlsTransport, metrics: MetricsRegistry, tel: Telemetry, shares?: ClientShares, outside?: Handler): H1Server {
  const routed = route(table, outside);
  const layers = [normalize, observe(tel, 'outbound'), routed, fault, retry, timeout, balance];
  if (shares) layers.unshift(shares.layer);
  const handler = stack(layers, mtlsForward(transport));
  // Upgrades run the same layers up to their own last step: HTTP/1.1 over TLS to the peer's proxy,
  // whose inbound runs host-check and authorize on the upgrade request. Not a mesh/1 tunnel stream:
  // the peer joins those to the app as opaque TCP, past its HTTP layers (no path rule, no identity
  // header); mesh/1 would need a stream that carries an HTTP head first, then bytes both ways.
  const toPeer: Transport = {
    send(ex) {
      const ep = ex.endpoint!;
      const up = https.request({
        agent: false,
        host: ep.info.address,
        port: ep.info.port,
        method: ex.req.method,
        path: ex.path,
        headers: ex.headers as unknown as Record<string, string>,
        servername: ep.servername,
        checkServerIdentity: ep.checkServerIdentity,
        secureContext: transport.secureContext,
        setHost: false,
      } as https.RequestOptions);
      relayUpgrade(ex, up, upgraded);
    },
    report: TOP,
  };
  const upgraded = (ex: Exchange) => toPeer.report.done(ex);
  const upgrade = stack([normalize, routed, balance], toPeer);
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
