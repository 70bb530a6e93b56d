// A mesh in one process, for tests of the outbound side against peers that misbehave: a CA, peer
// proxies that speak mesh/1 (each with whatever certificate the case needs), and an outbound
// listener whose routing table names them.
import net from 'node:net';
import tls from 'node:tls';
import { createIssuer, createTrustAnchor, generateKey, Issuer, type CertAndKey, type KeyPair } from '../../src/identity/ca.js';
import { ALPN } from '../../src/proxy/wire/mux-frames.js';
import { serveMux } from '../../src/proxy/wire/mux-server.js';
import type { H1Handlers } from '../../src/proxy/h1-server.js';
import { RoutingTable } from '../../src/proxy/table.js';
import { routeSettingsFromSnapshot } from '../../src/proxy/route-config.js';
import { MetricsRegistry } from '../../src/proxy/metrics.js';
import { Telemetry } from '../../src/proxy/telemetry.js';
import { createOutboundServer } from '../../src/proxy/outbound.js';
import { newMtlsSessions, type MtlsTransport } from '../../src/proxy/layers/forward.js';
import type { StatsFor } from '../../src/proxy/balancer.js';
import type { EndpointInfo } from '../../src/model/snapshot.js';

export const TD = 'cluster.local';
export const HOUR = 3600_000;
export const idOf = (sa: string) => `spiffe://${TD}/ns/default/sa/${sa}`;

export interface Ca {
  anchor: CertAndKey;
  issuer: CertAndKey;
  key: KeyPair;
  /** A leaf (with its issuer) for `uri`; `notBefore` in the past makes an expired one. */
  leaf(uri: string, o?: { notBefore?: Date; lifetimeMs?: number }): string;
}

export async function makeCa(): Promise<Ca> {
  const anchor = await createTrustAnchor(TD);
  const issuer = await createIssuer(TD, anchor);
  const key = await generateKey();
  const iss = new Issuer(issuer);
  return {
    anchor, issuer, key,
    leaf: (uri, o = {}) => iss.issueLeaf({ uri, publicKeyPem: key.publicKeyPem, lifetimeMs: o.lifetimeMs ?? HOUR, notBefore: o.notBefore }) + issuer.certPem,
  };
}

/** A peer proxy's inbound port: mutual TLS, mesh/1, the given handlers. */
export async function muxPeer(cert: string, key: string, ca: string, h: H1Handlers): Promise<{ port: number; close(): Promise<void> }> {
  const open = new Set<net.Socket>();
  const server = tls.createServer({ cert, key, ca, requestCert: true, rejectUnauthorized: true, ALPNProtocols: [ALPN], minVersion: 'TLSv1.3' }, (sock) => {
    open.add(sock);
    sock.on('close', () => open.delete(sock));
    serveMux(sock, h);
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Handlers that answer every request 200 with `body`, after reading the request's body. */
export function answer(body: string): H1Handlers {
  return {
    request(req, res) {
      req.pipe({
        write: () => true,
        end() {
          const b = Buffer.from(body);
          res.writeHead(200, undefined, ['content-type', 'text/plain', 'content-length', String(b.length)]);
          res.end(b);
        },
      });
    },
    upgrade: (_req, sock) => sock.destroy(),
  };
}

export interface Outbound {
  address: string;
  metrics: MetricsRegistry;
  close(): Promise<void>;
}

/** An outbound listener (client identity `sa/client`) routing service `web` to `endpoints`. */
export async function outbound(ca: Ca, endpoints: Array<Pick<EndpointInfo, 'instance' | 'port' | 'identity'>>): Promise<Outbound> {
  const metrics = new MetricsRegistry({ namespace: 'default', deployment: 'client-v1', pod: 'client-0' });
  const statsFor: StatsFor = (namespace, service, ep) => metrics.requests(ep
    ? { direction: 'outbound', dst_namespace: namespace, dst_service: service, dst_pod: ep.instance }
    : { direction: 'outbound', dst_namespace: namespace, dst_service: service });
  const table = new RoutingTable(TD, 'default', statsFor, routeSettingsFromSnapshot);
  table.apply({
    version: '1', trustDomain: TD,
    services: [{ namespace: 'default', name: 'web', endpoints: endpoints.map((e) => ({ namespace: 'default', service: 'web', version: 'v1', address: '127.0.0.1', ...e })) }],
  });
  const transport: MtlsTransport = {
    sessions: newMtlsSessions(),
    secureContext: tls.createSecureContext({ cert: ca.leaf(idOf('client')), key: ca.key.keyPem, ca: ca.anchor.certPem, minVersion: 'TLSv1.3' }),
  };
  const tel = new Telemetry({ identity: idOf('client'), service: 'client', namespace: 'default', deployment: 'client-v1', pod: 'client-0' }, { accessLog: false, collector: null }, () => {});
  const server = createOutboundServer(() => table.current, transport, metrics, tel);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    metrics,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      transport.sessions.destroy();
    },
  };
}
