// The hostile-input bed: a workload "web" whose app is the logging backend, behind its inbound proxy (mutual TLS with
// HTTP/1.1 or mesh/1, and a second inbound that also takes plaintext as on Kubernetes), and a client workload's
// outbound proxy routing to it. Built in-process from the proxy's real parts over real sockets and real mutual TLS,
// without a control plane, so that hundreds of cases run in seconds.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { createIssuer, createTrustAnchor, generateKey, Issuer } from '../../../src/identity/ca.js';
import { formatIdentity } from '../../../src/identity/spiffe.js';
import { compilePolicy, type CompiledPolicy } from '../../../src/model/policy.js';
import { createInboundServer } from '../../../src/proxy/inbound.js';
import { createOutboundServer } from '../../../src/proxy/outbound.js';
import { newMtlsSessions } from '../../../src/proxy/layers/forward.js';
import { MetricsRegistry } from '../../../src/proxy/metrics.js';
import { RoutingTable } from '../../../src/proxy/table.js';
import { Telemetry } from '../../../src/proxy/telemetry.js';
import type { IdentityManager } from '../../../src/proxy/identity.js';
import { ALPN } from '../../../src/proxy/wire/mux-frames.js';
import { startBackend, type Backend } from './backend.js';

export const TD = 'cluster.local';
const id = (sa: string) => formatIdentity({ trustDomain: TD, namespace: 'default', serviceAccount: sa });
export const WEB_ID = id('web');
/** The client workload whose outbound proxy is one side. */
export const CLIENT_ID = id('client');
/** A meshed peer speaking to the inbound port directly. */
export const TESTER_ID = id('tester');
/** Policy on the mutual-TLS inbound: only paths under /ok, for any verified identity. */
export const ALLOWED = '/ok';
export const DENIED = '/denied';

export type Side = 'outbound' | 'inbound-tls' | 'inbound-mux' | 'inbound-plain';
export const SIDES: Side[] = ['outbound', 'inbound-tls', 'inbound-mux', 'inbound-plain'];

export interface Bed {
  backend: Backend;
  /** Both proxies' metrics (one registry: the outbound's series have direction="outbound"). */
  metrics: MetricsRegistry;
  /** Both proxies' telemetry (a test may give it a tap). */
  telemetry: Telemetry;
  /** Where each side listens, and the identity the app must see on requests that came through it. */
  address: Record<Side, number>;
  identity: Record<Side, string | null>;
  /** Whether policy denies paths under DENIED on this side (plaintext has no identity: its policy allows all). */
  denies: Record<Side, boolean>;
  /** Connects to a side: plain TCP, or TLS with the tester's certificate and the side's ALPN. */
  connect(side: Side): Promise<net.Socket>;
  close(): Promise<void>;
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function identityOf(certPem: string, keyPem: string, anchorPem: string): IdentityManager {
  // The inbound needs only its server options and the rotation event from the identity manager.
  return Object.assign(new EventEmitter(), {
    serverOptions: () => ({ cert: certPem, key: keyPem, ca: anchorPem, minVersion: 'TLSv1.3' as const }),
  }) as unknown as IdentityManager;
}

/** The trust anchor and the three workloads' certificates: made once, shared by every bed. */
export interface Certs {
  anchor: { certPem: string };
  web: { cert: string; key: string };
  client: { cert: string; key: string };
  tester: { cert: string; key: string };
}

export async function makeCerts(): Promise<Certs> {
  const anchor = await createTrustAnchor(TD);
  const issuerCa = await createIssuer(TD, anchor);
  const issuer = new Issuer(issuerCa);
  const leaf = async (uri: string) => {
    const kp = await generateKey();
    return { cert: issuer.issueLeaf({ uri, publicKeyPem: kp.publicKeyPem, lifetimeMs: 3600_000 }) + issuerCa.certPem, key: kp.keyPem };
  };
  const [web, client, tester] = await Promise.all([leaf(WEB_ID), leaf(CLIENT_ID), leaf(TESTER_ID)]);
  return { anchor, web, client, tester };
}

/**
 * A bed of its own (its own app and proxies), so sides can run side by side: what the app sees is one side's.
 * `appPort`: an app of the caller's behind the inbound proxies instead of the logging backend.
 */
export async function startBed(certs?: Certs, appPort?: number): Promise<Bed> {
  const { anchor, web, client, tester } = certs ?? await makeCerts();
  const backend = await startBackend();
  const metrics = new MetricsRegistry({ namespace: 'default', deployment: 'web-v1', pod: 'web-v1-a' });
  const telemetry = new Telemetry({ identity: WEB_ID, service: 'web', namespace: 'default', deployment: 'web-v1', pod: 'web-v1-a' }, { accessLog: false, collector: null });
  const denyPolicy = compilePolicy({ policies: [{
    apiVersion: 'mesh.io/v1alpha1', kind: 'Policy', metadata: { name: 'default', namespace: 'default' },
    spec: { default: 'deny', rules: [{ from: '*', to: 'web', pathPrefix: ALLOWED }] },
  }] });
  const open: CompiledPolicy = compilePolicy(null);
  const inbound = (policy: CompiledPolicy, plaintext: boolean) => createInboundServer({
    namespace: 'default', service: 'web', policy: () => policy, metrics, telemetry, identity: identityOf(web.cert, web.key, anchor.certPem),
    trustDomain: TD, appPort: appPort ?? backend.port, plaintext,
  });
  const tlsInbound = inbound(denyPolicy, false);
  const plainInbound = inbound(open, true);
  const tlsPort = await listen(tlsInbound);
  const plainPort = await listen(plainInbound);

  const routing = new RoutingTable(TD, 'default', (ns, svc) => metrics.requests({ dst_namespace: ns, dst_service: svc }), () => ({ rules: [] }));
  routing.apply({ version: '1', trustDomain: TD, services: [{ namespace: 'default', name: 'web', endpoints: [
    { instance: 'web-v1-a', namespace: 'default', service: 'web', version: 'v1', address: '127.0.0.1', port: tlsPort, identity: WEB_ID },
  ] }] });
  const transport = { sessions: newMtlsSessions(), secureContext: tls.createSecureContext({ cert: client.cert, key: client.key, ca: anchor.certPem }) };
  const outbound = createOutboundServer(() => routing.current, transport, metrics, telemetry);
  const outPort = await listen(outbound);

  const address: Record<Side, number> = { 'outbound': outPort, 'inbound-tls': tlsPort, 'inbound-mux': tlsPort, 'inbound-plain': plainPort };
  // TLS sessions are resumed: hundreds of cases need not each pay for a full handshake.
  const sessions: Partial<Record<Side, Buffer>> = {};
  const connect = (side: Side) => new Promise<net.Socket>((resolve, reject) => {
    const port = address[side];
    if (side === 'outbound' || side === 'inbound-plain') {
      const s = net.connect(port, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
      return;
    }
    const s = tls.connect({
      host: '127.0.0.1', port, cert: tester.cert, key: tester.key, ca: anchor.certPem, servername: 'web.default.mesh.local',
      ALPNProtocols: [side === 'inbound-mux' ? ALPN : 'http/1.1'], checkServerIdentity: () => undefined, session: sessions[side],
    }, () => resolve(s));
    s.once('session', (b: Buffer) => (sessions[side] = b));
    s.once('error', reject);
  });
  return {
    backend,
    metrics,
    telemetry,
    address,
    identity: { 'outbound': CLIENT_ID, 'inbound-tls': TESTER_ID, 'inbound-mux': TESTER_ID, 'inbound-plain': null },
    denies: { 'outbound': true, 'inbound-tls': true, 'inbound-mux': true, 'inbound-plain': false },
    connect,
    close: async () => {
      for (const s of [outbound, tlsInbound, plainInbound]) {
        (s as net.Server & { closeAllConnections?: () => void }).closeAllConnections?.();
        await new Promise<void>((r) => s.close(() => r()));
      }
      transport.sessions.destroy();
      await backend.close();
    },
  };
}
