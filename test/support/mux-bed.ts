// A mesh in one process, for tests of the outbound side against peers that misbehave: a CA, peer
// proxies that speak mesh/1 (each with whatever certificate the case needs), and an outbound
// listener whose routing table names them.
import net from 'node:net';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { createIssuer, createTrustAnchor, generateKey, Issuer, type CertAndKey, type KeyPair } from '../../src/identity/ca.js';
import { ALPN } from '../../src/proxy/wire/mux-frames.js';
import { serveMux } from '../../src/proxy/wire/mux-server.js';
import type { H1Handlers } from '../../src/proxy/wire/h1-server.js';
import type { MuxHandlers } from '../../src/proxy/wire/mux-server.js';
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
export interface Listening {
  port: number;
  close(): Promise<void>;
}

/** Listens on a free 127.0.0.1 port; close() also ends the connections still open. */
export async function listenTracked(server: net.Server): Promise<Listening> {
  const open = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

export async function muxPeer(cert: string, key: string, ca: string, h: MuxHandlers): Promise<Listening> {
  const server = tls.createServer({ cert, key, ca, requestCert: true, rejectUnauthorized: true, ALPNProtocols: [ALPN], minVersion: 'TLSv1.3' }, (sock) => serveMux(sock, h));
  server.on('tlsClientError', () => {});
  return listenTracked(server);
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

/** One mesh/1 frame as a peer would send it. */
export function frame(type: number, flags: number, id: number, payload: Buffer | string = ''): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  const h = Buffer.alloc(10);
  h[0] = type;
  h[1] = flags;
  h.writeUInt32BE(id, 2);
  h.writeUInt32BE(body.length, 6);
  return Buffer.concat([h, body]);
}

export interface Frame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

/** A raw mesh/1 connection to `address` (host:port) with the given client certificate. */
export async function muxConnect(address: string, cert: string, key: string, ca: string): Promise<{ sock: tls.TLSSocket; frames: Frame[]; closed: Promise<void> }> {
  const [host, port] = address.split(':') as [string, string];
  const sock = tls.connect({ host, port: Number(port), cert, key, ca, servername: 'web.default.mesh.local', checkServerIdentity: () => undefined, ALPNProtocols: [ALPN] });
  await new Promise<void>((resolve, reject) => sock.once('secureConnect', resolve).once('error', reject));
  const frames: Frame[] = [];
  let buf = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 10 && buf.length >= 10 + buf.readUInt32BE(6)) {
      const len = buf.readUInt32BE(6);
      // Only heads and control frames are kept: a test that reads bodies counts them itself.
      if (buf[0] !== 2) frames.push({ type: buf[0]!, flags: buf[1]!, id: buf.readUInt32BE(2), payload: Buffer.from(buf.subarray(10, 10 + len)) });
      buf = buf.subarray(10 + len);
    }
  });
  sock.on('error', () => {});
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  return { sock, frames, closed };
}

/** A process's resident memory (MiB) and open file descriptors, from /proc. */
export function procStats(pid: number): { rssMiB: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { rssMiB: Math.round(kb / 1024), fds: readdirSync(`/proc/${pid}/fd`).length };
}

/** Samples procStats every 50 ms while `during` runs; returns the peak of each. */
export async function peakWhile(pid: number, during: () => Promise<void>): Promise<{ rssMiB: number; fds: number }> {
  const peak = procStats(pid);
  const timer = setInterval(() => {
    const s = procStats(pid);
    peak.rssMiB = Math.max(peak.rssMiB, s.rssMiB);
    peak.fds = Math.max(peak.fds, s.fds);
  }, 50);
  try {
    await during();
  } finally {
    clearInterval(timer);
  }
  const s = procStats(pid);
  return { rssMiB: Math.max(peak.rssMiB, s.rssMiB), fds: Math.max(peak.fds, s.fds) };
}

/** A certificate the installed mesh in `stateDir` would issue for `uri` (a peer the test plays), with its key and the trust anchor. */
export async function meshCredentials(stateDir: string, uri: string): Promise<{ ca: string; cert: string; key: string }> {
  const read = (f: string) => readFileSync(join(stateDir, 'identity', f), 'utf8');
  const issuerPem = read('issuer.crt');
  const kp = await generateKey();
  const cert = new Issuer({ certPem: issuerPem, keyPem: read('issuer.key') }).issueLeaf({ uri, publicKeyPem: kp.publicKeyPem, lifetimeMs: 3600_000 }) + issuerPem;
  return { ca: read('trust-anchor.crt'), cert, key: kp.keyPem };
}
