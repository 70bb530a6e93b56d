// `mesh proxy`: assembles a sidecar (or the ingress) from its parts and keeps it in step with the
// control plane: identity, config watch, outbound/inbound/admin listeners, endpoint registration.
import type http from 'node:http';
import type net from 'node:net';
import { createServer as netServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { AppProtocol } from '../model/app-protocol.js';
import { MeshError } from '../util/errors.js';
import { servicePortMap, type EndpointInfo, type Snapshot } from '../model/snapshot.js';
import type { StatsFor } from './balancer.js';
import { RoutingTable } from './table.js';
import { routeSettingsFromSnapshot } from './route-config.js';
import { compilePolicy, type CompiledPolicy } from '../model/policy.js';
import { MetricsRegistry } from './metrics.js';
import { Telemetry } from './telemetry.js';
import { Tap } from './tap.js';
import { ControlClient } from '../api/client.js';
import type { ErrorBody, RegisterRequest } from '../api/types.js';
import { ConfigWatcher } from './discovery.js';
import { IdentityManager } from './identity.js';
import { createAdminServer } from './admin.js';
import { APP_CONNECTIONS, createInboundServer } from './inbound.js';
import { readTimeouts } from './wire/h1-server.js';
import { ClientShares } from './layers/fair.js';
import { createOutboundServer } from './outbound.js';
import { newMtlsSessions, type MtlsTransport } from './layers/forward.js';
import { Egress } from './egress.js';
import type { TcpOutbound } from './tcp.js';
import { createOutboundFront, createUpstreamListener, withFallback } from './tcp-listeners.js';
import { transparentCapture } from './capture.js';
import { hostOnly } from './layers/normalize.js';
import type { PortSet } from '../model/ports.js';
import { timeOrigin } from '../util/clock.js';

export interface ProxyOptions {
  /** client: a sidecar for an app that only calls out (a job, a CLI): outbound only, no inbound listener. */
  mode: 'sidecar' | 'ingress' | 'client';
  namespace: string;
  service: string;
  version: string;
  instance: string;
  /** The workload for the `deployment` metric label (Kubernetes: the pod's Deployment, ...); default service-version. */
  workload?: string;
  trustDomain: string;
  trustAnchorsPem: string;
  controlAddress: string;
  /** Bootstrap credential: a join token, or (Kubernetes) a function reading the projected token file. */
  joinToken?: string | (() => string | undefined);
  /** Where the certificate and last config are cached, for restarts while the control plane is away. */
  cacheDir?: string;
  appPort?: number;
  /** What the app serves on appPort: HTTP/1.1 (default) or HTTP/2 cleartext. */
  appProtocol?: AppProtocol;
  inboundPort?: number;
  /** More inbound listeners, each forwarding to its own app port (the other declared ports of a Kubernetes pod). */
  extraInbound?: { port: number; appPort: number }[];
  outboundPort?: number;
  adminPort?: number;
  /** The ingress listens here (127.0.0.1 by default) and sends names it does not know to this service. */
  outboundHost?: string;
  /** Where the inbound and admin listeners bind: 127.0.0.1 locally, every address in a pod. */
  listenHost?: string;
  /** In a pod with IPv6: the outbound listener also listens here ([::1], where ip6tables redirects the app's IPv6 TCP). */
  outboundHost6?: string;
  /** The inbound port also takes plaintext (in a pod, where iptables sends it every connection). */
  inboundPlaintext?: boolean;
  defaultService?: string;
  /** Access logs and trace export switched on locally (the control plane's settings can too). */
  accessLog?: boolean;
  traceCollector?: string;
  /** Local ports whose connections go to a service's port (`mesh run --upstream redis:6379=127.0.0.1:16379`). */
  upstreams?: { authority: string; listenPort: number }[];
  /** Destination ports never sniffed for HTTP: their connections are opaque TCP at once (`--opaque-ports`). */
  opaquePorts?: PortSet;
  /** In a pod: connections iptables redirected to the outbound listener go to their original destination (capture.ts). */
  transparent?: boolean;
  log?: (msg: string) => void;
}

/** The `settings` config kind, pushed by the control plane. */
export interface MeshSettings {
  accessLog?: boolean | { services: string[] };
  tracing?: { collector?: string | null };
}

export interface RunningProxy {
  outbound: string;
  inbound?: string;
  /** The extraInbound listeners: address and the app port each forwards to. */
  extraInbound: { address: string; appPort: number }[];
  admin: string;
  /** The upstream listeners, as service:port → 127.0.0.1:port. */
  upstreams: { authority: string; address: string }[];
  identity: IdentityManager;
  config: ConfigWatcher;
  metrics: MetricsRegistry;
  ready(): boolean;
  /** Joins the service (starts heartbeats): call once the app listens. */
  register(pid?: number): void;
  /** Leaves the service, so peers stop sending here before the app stops. */
  deregister(): Promise<void>;
  close(): Promise<void>;
}

const HEARTBEAT_MS = 2000;
/** The ingress's share per client address of what it has in flight (an endpoint takes 1000). */
export const CLIENT_INFLIGHT = 100;
/** Connections one listener holds at once (each is itself bounded: windows, streams, timeouts). */
export const MAX_CONNECTIONS = 4096;

/** Limits an operator may tune per sidecar: MESH_PROXY_HEAD_TIMEOUT_MS and the like, positive integers. */
function envLimit(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new MeshError(`${name}=${v} is not a positive integer`, `set ${name} to a whole number, or unset it`);
  return n;
}

export async function startProxy(o: ProxyOptions): Promise<RunningProxy> {
  const log = o.log ?? (() => {});
  readTimeouts.headMs = envLimit('MESH_PROXY_HEAD_TIMEOUT_MS') ?? readTimeouts.headMs;
  readTimeouts.bodyIdleMs = envLimit('MESH_PROXY_BODY_TIMEOUT_MS') ?? readTimeouts.bodyIdleMs;
  const appConnections = { limit: envLimit('MESH_PROXY_APP_CONNECTIONS') ?? APP_CONNECTIONS.limit, queue: envLimit('MESH_PROXY_APP_QUEUE') ?? APP_CONNECTIONS.queue };
  const handshakeMs = envLimit('MESH_PROXY_HANDSHAKE_TIMEOUT_MS');
  const shares = o.mode === 'ingress' ? new ClientShares(envLimit('MESH_PROXY_CLIENT_INFLIGHT') ?? CLIENT_INFLIGHT) : undefined;
  let identity: IdentityManager;
  const client = new ControlClient(o.controlAddress, o.trustAnchorsPem, o.trustDomain, () => identity?.secureContext);
  identity = new IdentityManager(
    { trustDomain: o.trustDomain, namespace: o.namespace, serviceAccount: o.service },
    client,
    o.joinToken,
    o.cacheDir ? join(o.cacheDir, 'identity.json') : undefined,
    log,
  );
  const watcher = new ConfigWatcher(client, o.cacheDir ? join(o.cacheDir, 'config.json') : undefined, log);
  watcher.loadCache();
  await identity.init();

  const deployment = o.workload || (o.mode === 'ingress' ? o.service : `${o.service}-${o.version}`);
  const metrics = new MetricsRegistry({ namespace: o.namespace, deployment, pod: o.instance });
  metrics.gauge('identity_cert_expiration_timestamp_seconds', () => (identity.current ? identity.current.notAfter / 1000 : 0));
  metrics.gauge('process_start_time_seconds', () => Math.round(timeOrigin / 1000));
  metrics.gauge('process_resident_memory_bytes', () => process.memoryUsage.rss());
  const dstLabels = (ep: EndpointInfo) => ({
    dst_namespace: ep.namespace, dst_service: ep.service, dst_deployment: ep.workload ?? `${ep.service}-${ep.version}`, dst_pod: ep.instance, server_id: ep.identity,
  });
  const statsFor: StatsFor = (namespace, service, ep, version) => metrics.requests(ep
    ? { direction: 'outbound', ...dstLabels(ep), tls: 'true' }
    : { direction: 'outbound', dst_namespace: namespace, dst_service: service, ...(version ? { dst_deployment: `${service}-${version}` } : {}) });
  statsFor.tcp = (ep) => metrics.tcp({ direction: 'outbound', peer: 'dst', ...dstLabels(ep), tls: 'true' });

  const transport: MtlsTransport = {
    sessions: newMtlsSessions(metrics.tcp({ direction: 'outbound', peer: 'dst', tls: 'true' })),
    secureContext: identity.secureContext!,
  };
  identity.on('rotated', () => {
    transport.secureContext = identity.secureContext!;
  });

  const telemetry = new Telemetry(
    { identity: identity.uri, service: o.service, namespace: o.namespace, deployment, pod: o.instance },
    { accessLog: !!o.accessLog, collector: o.traceCollector ?? null },
  );
  // Spans for the control plane's API (Kubernetes): one export in flight at a time, so a control plane that is slow or
  // away costs spans, never memory or the client's few connections.
  let exporting = false;
  telemetry.toControl = (body) => {
    if (exporting) return;
    exporting = true;
    client.request('POST', '/v1/traces', body, { timeoutMs: 5000 }).catch(() => undefined).finally(() => (exporting = false));
  };
  const tap = (telemetry.tap = new Tap(client, { identity: identity.uri, instance: o.instance }, log));
  const applySettings = (s: MeshSettings | undefined, traces: Snapshot['traces']) => {
    const al = s?.accessLog;
    const pushed = al === true || (typeof al === 'object' && al !== null && Array.isArray(al.services) && al.services.includes(o.service));
    // A collector named by flag or settings records every trace; the control plane's own (the default) a few a second.
    const named = o.traceCollector ?? s?.tracing?.collector ?? null;
    telemetry.settings = named !== null || !traces ? { accessLog: !!o.accessLog || pushed, collector: named }
      : { accessLog: !!o.accessLog || pushed, collector: traces.collector, newTracesPerSecond: traces.perSecond };
  };

  const routing = new RoutingTable(o.trustDomain, o.namespace, statsFor, routeSettingsFromSnapshot, o.defaultService);
  let policy: CompiledPolicy = compilePolicy(null);
  let identityEpoch: string | undefined;
  // Its own Service's ports → target ports (Kubernetes), rebuilt here so the inbound path only looks them up.
  let servicePorts: ReadonlyMap<number, number> = new Map();
  let h2cPorts: ReadonlySet<number> = new Set();
  let servicePortsError: string | undefined;
  // Kubernetes: the Services that select this pod, which policy's `to` names (its ServiceAccount may be named otherwise).
  let ownServices: readonly string[] | undefined;
  const applySnapshot = (s: Snapshot) => {
    // A new trust bundle or issuer: renew now rather than at 70% of the certificate's life.
    if (s.identityEpoch !== undefined) {
      if (identityEpoch !== undefined && identityEpoch !== s.identityEpoch) identity.renewSoon();
      identityEpoch = s.identityEpoch;
    }
    routing.apply(s);
    try {
      policy = compilePolicy(s.config?.policies ?? null, s.workloads);
    } catch (err) {
      // The control plane validates policies; should one still not compile, the last good one stays.
      log(`ignoring invalid policies: ${(err as Error).message}`);
    }
    applySettings(s.config?.settings as MeshSettings | undefined, s.traces);
    ownServices = s.workloads ? s.workloads.pods[`${o.namespace}/${o.instance}`]?.services ?? [] : undefined;
    const portsOf = ownServices?.[0] ?? o.service;
    const own = s.services.find((svc) => svc.namespace === o.namespace && svc.name === portsOf);
    const ports = servicePortMap(own);
    servicePorts = ports.map;
    // App ports a Service port declares HTTP/2 or gRPC for: the inbound side speaks h2c to them.
    h2cPorts = ports.error ? new Set() : new Set((own?.ports ?? []).filter((p) => p.appProtocol === 'h2c').map((p) => p.targetPort));
    if (ports.error && ports.error !== servicePortsError) log(ports.error);
    servicePortsError = ports.error;
  };
  if (watcher.snapshot) applySnapshot(watcher.snapshot);
  else applySnapshot({ version: '', trustDomain: o.trustDomain, services: [] });
  watcher.on('snapshot', applySnapshot);
  watcher.start();

  const servers: net.Server[] = [];
  // Every listener takes a bounded number of connections at once (Node closes the ones past it on accept).
  const maxConnections = envLimit('MESH_PROXY_MAX_CONNECTIONS') ?? MAX_CONNECTIONS;
  const listen = (server: net.Server, port: number, what: string, host = '127.0.0.1') =>
    new Promise<string>((resolve, reject) => {
      server.maxConnections = maxConnections;
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'EADDRINUSE' ? new MeshError(`${what} port ${host}:${port} is in use`, `choose another port for the ${what} listener`) : err));
      server.listen(port, host, () => {
        servers.push(server);
        resolve(`${host}:${(server.address() as AddressInfo).port}`);
      });
    });

  const closeAll = async () => {
    for (const s of servers) {
      (s as Partial<http.Server>).closeAllConnections?.();
      await new Promise<void>((r) => s.close(() => r()));
    }
  };

  let registered = false;
  let heartbeat: NodeJS.Timeout | undefined;
  const state = { outbound: '', inbound: undefined as string | undefined, extraInbound: [] as RunningProxy['extraInbound'], admin: '', upstreams: [] as RunningProxy['upstreams'] };
  // Names outside the mesh pass through unless the namespace's policy denies egress; the ingress sends them to its default service.
  const egress = new Egress(metrics, o.namespace, () => policy.egressAllowed(o.namespace));
  const outside = o.mode === 'ingress' ? undefined : egress.http;
  const outsideUpgrade = o.mode === 'ingress' ? undefined : egress.upgrade;
  const tcpOut: TcpOutbound = {
    table: () => routing.current, transport, egress,
    statsFor: (ep) => metrics.tcp({ direction: 'outbound', peer: 'dst', ...dstLabels(ep), tls: 'true', protocol: 'opaque' }),
  };
  const appConns = metrics.tcp({ direction: 'outbound', peer: 'src', tls: 'false' });
  try {
    const http = createOutboundServer(() => routing.current, transport, metrics, telemetry, shares, outside, outsideUpgrade);
    // The ingress takes HTTP only; a sidecar's outbound listener also takes CONNECT (TCP, see tcp-listeners.ts).
    const capture = o.transparent ? transparentCapture(tcpOut, appConns, o.opaquePorts, log) : undefined;
    // HTTP inside a CONNECT to a service goes to that service unless its requests name another in the mesh.
    const sniff = { opaque: o.opaquePorts, httpFor: (host: string) => createOutboundServer(withFallback(() => routing.current, host), transport, metrics, telemetry, undefined, outside, outsideUpgrade) };
    const outbound = o.mode === 'ingress' ? http : createOutboundFront(http, tcpOut, appConns, capture, sniff);
    state.outbound = await listen(outbound, o.outboundPort ?? 0, o.mode === 'ingress' ? 'ingress' : 'outbound', o.outboundHost);
    if (o.outboundHost6 !== undefined) {
      // A second socket on the same port for IPv6, whose connections the same listener takes (and counts).
      const six = netServer({ allowHalfOpen: true }, (sock) => outbound.emit('connection', sock));
      await listen(six, Number(state.outbound.slice(state.outbound.lastIndexOf(':') + 1)), 'outbound (IPv6)', o.outboundHost6);
    }
    if (o.mode === 'sidecar') {
      if (!o.appPort) throw new MeshError('a sidecar needs the app port', 'pass --app-port');
      const inboundFor = (appPort: number, hostPorts?: Set<number>) => createInboundServer({ plaintext: o.inboundPlaintext, namespace: o.namespace, service: o.service, services: () => ownServices, policy: () => policy, metrics, telemetry, identity, trustDomain: o.trustDomain, appPort, appProtocol: o.appProtocol, h2cPorts: o.inboundPlaintext ? () => h2cPorts : undefined, hostPorts, servicePorts: () => servicePorts, appConnections, handshakeMs, log });
      // Peers dial the default listener; a Host naming another declared port (or a Service port targeting one) goes to that port.
      const others = o.extraInbound?.length ? new Set(o.extraInbound.map((x) => x.appPort)) : undefined;
      state.inbound = await listen(inboundFor(o.appPort, others), o.inboundPort ?? 0, 'inbound', o.listenHost);
      for (const x of o.extraInbound ?? []) {
        state.extraInbound.push({ address: await listen(inboundFor(x.appPort), x.port, `inbound (app port ${x.appPort})`, o.listenHost), appPort: x.appPort });
      }
    }
    for (const u of o.upstreams ?? []) {
      const port = Number(u.authority.slice(u.authority.lastIndexOf(':') + 1));
      const toService = createOutboundServer(withFallback(() => routing.current, hostOnly(u.authority)), transport, metrics, telemetry, undefined, outside, outsideUpgrade);
      const listener = createUpstreamListener({ ...u, opaque: o.opaquePorts?.has(port) ?? false }, toService, tcpOut, appConns);
      state.upstreams.push({ authority: u.authority, address: await listen(listener, u.listenPort, `upstream ${u.authority}`) });
    }
    const admin = createAdminServer({
      ready: () => identity.current !== null && watcher.snapshot !== null,
      metrics: () => metrics.render(),
    });
    state.admin = await listen(admin, o.adminPort ?? 0, 'admin', o.listenHost);
  } catch (err) {
    await closeAll();
    identity.stop();
    watcher.stop();
    client.close();
    throw err;
  }

  const inboundPort = state.inbound ? Number(state.inbound.split(':').pop()) : 0;
  let pid: number | undefined;
  const beat = async () => {
    try {
      const { status, body } = await client.request<Partial<ErrorBody>>('POST', '/v1/endpoints', {
        instance: o.instance, namespace: o.namespace, service: o.service, version: o.version,
        port: inboundPort, pid, admin: state.admin, role: o.mode, configVersion: watcher.snapshot?.version,
      } satisfies RegisterRequest, { timeoutMs: 5000 });
      if (status !== 200) log(`registration refused: ${body?.error ?? status}`);
    } catch {
      // The watch loop reports control-plane outages; heartbeats resume on their own.
    }
  };
  // A restarted control plane gets this endpoint back at the next heartbeat, not a lease later;
  // a new snapshot is acknowledged at once, so `mesh route set` can wait for every proxy.
  watcher.on('connected', () => registered && void beat());
  watcher.on('snapshot', () => registered && watcher.connected && void beat());

  const deregister = async () => {
    clearInterval(heartbeat);
    if (!registered) return;
    registered = false;
    await client.request('DELETE', `/v1/endpoints/${encodeURIComponent(o.instance)}`, undefined, { timeoutMs: 1000 }).catch(() => {});
  };

  return {
    ...state,
    identity,
    config: watcher,
    metrics,
    ready: () => identity.current !== null && watcher.snapshot !== null,
    register(p?: number) {
      if (registered) return;
      registered = true;
      pid = p;
      void beat();
      heartbeat = setInterval(() => void beat(), HEARTBEAT_MS);
      heartbeat.unref();
      tap.start();
    },
    deregister,
    async close() {
      await deregister();
      tap.stop();
      telemetry.flush();
      watcher.stop();
      identity.stop();
      await closeAll();
      transport.sessions.destroy();
      egress.close();
      client.close();
    },
  };
}
