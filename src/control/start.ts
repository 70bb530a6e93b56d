// The control plane, assembled once from what a platform hands it: where its identity comes from, its stores and
// discovery (ControlPlatform), how workloads and admins authenticate, and where to listen. `mesh control` on either
// platform is a thin caller (platform/local/control-plane.ts, platform/kubernetes/control.ts).
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:net';
import { certInfo, DAY, generateKey, splitPem, type KeyPair } from '../identity/ca.js';
import { identityEpoch } from '../identity/epoch.js';
import { CONTROL_IDENTITY } from '../api/client.js';
import { MeshError } from '../util/errors.js';
import { CONTROL_COLLECTOR, type ConfigKind, type Snapshot } from '../model/snapshot.js';
import type { ControlPlatform } from './platform.js';
import { Registry } from './registry.js';
import { createControlServer, type ControlAuth, type ControlIdentity, type ControlServer } from './server.js';
import type { MakeServingTls } from './serving-cert.js';
import { Telemetry } from './telemetry/index.js';
import { startTraceReceiver, TraceStore } from './traces.js';

/** New traces a proxy starts and records per second when it exports to the control plane by default. */
const DEFAULT_TRACES_PER_SECOND = 2;

export interface IdentitySource {
  /** The identity now; `reload` also refuses material that would sign certificates nobody trusts (it throws). */
  read(reload: boolean): Promise<ControlIdentity>;
  /**
   * Calls changed whenever the identity may have changed (a Kubernetes Secret), until the returned stop is called.
   * Without it the identity is reloaded on request: POST /v1/identity/reload (admin).
   */
  watch?(changed: () => void): Promise<() => void>;
}

export interface ControlPlaneOptions {
  trustDomain: string;
  identity: IdentitySource;
  platform: ControlPlatform;
  auth: ControlAuth;
  /** Checks a config document before it is stored (PUT /v1/config/<kind>). */
  validators?: Partial<Record<ConfigKind, (value: unknown, snapshot: Snapshot) => unknown>>;
  /** Names the serving certificate carries besides the control plane's SPIFFE identity. */
  serving: { dnsNames: string[]; ips: string[] };
  port: number;
  address: string;
  /** How to fix a port in use (the error names the port). */
  portHint: string;
  scrapeIntervalMs?: number;
  /**
   * Receive the proxies' spans for the dashboard: 'loopback', OTLP over HTTP on a free 127.0.0.1 port (local platform);
   * 'api', POST /v1/traces on the control plane's own API from proxies with a mesh certificate (Kubernetes).
   */
  traces?: 'loopback' | 'api';
  /** Hears every identity put into service, the first one too (Kubernetes: the injector's trust anchors). */
  onIdentity?(id: ControlIdentity): void;
  log(line: string): void;
}

export interface RunningControlPlane {
  port: number;
  registry: Registry;
  server: ControlServer;
  /** Where proxies export spans, when traces are received. */
  otlpUrl?: string;
  close(): Promise<void>;
}

/** The control plane's own serving certificate: its SPIFFE identity and names, from the issuer, short-lived. */
export function servingTls(trustDomain: string, names: { dnsNames: string[]; ips: string[] }): MakeServingTls {
  // The next key is made as soon as one is used: on a loaded machine an RSA key can take longer than a
  // short certificate's time left after its renewal point.
  let spare: Promise<KeyPair> | undefined;
  return async (signer, chainPem, lifetimeMs) => {
    const kp = await (spare ?? generateKey());
    (spare = generateKey()).catch(() => (spare = undefined));
    const cert = signer.issueLeaf({ uri: CONTROL_IDENTITY(trustDomain), publicKeyPem: kp.publicKeyPem, lifetimeMs, ...names });
    return { cert: cert + chainPem, key: kp.keyPem };
  };
}

/** Listens, with a port in use said in one line and how to fix it. */
export function listen(server: Server, port: number, address: string, what: string, hint: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new MeshError(`${what} port ${address}:${port} is in use`, hint) : err));
    server.listen(port, address, () => resolve((server.address() as AddressInfo).port));
  });
}

export async function startControlPlane(o: ControlPlaneOptions): Promise<RunningControlPlane> {
  const { log, platform } = o;
  const id = await o.identity.read(false);
  o.onIdentity?.(id);
  const lifetime = (ms: number) => (ms > 0 ? ms : DAY);
  const makeTls = servingTls(o.trustDomain, o.serving);

  const registry = new Registry(o.trustDomain, platform);
  let epoch = identityEpoch(id.trustAnchorsPem, id.issuerCertPem);
  registry.setIdentityEpoch(epoch);
  const stops: (() => unknown)[] = [() => registry.close()];
  const close = async () => {
    for (const stop of stops.reverse()) await stop();
  };
  try {
    await platform.start?.(registry);
    stops.push(() => platform.stop?.());
    // Telemetry scrapes what the platform knows to run proxies (Kubernetes: every pod), else the registered ones.
    const targets = platform.scrapeTargets ? { list: () => platform.scrapeTargets!() } : registry;
    const telemetry = new Telemetry(targets, { scrapeIntervalMs: o.scrapeIntervalMs, log });
    stops.push(() => telemetry.close());
    const traces = o.traces ? new TraceStore() : undefined;
    const otlp = o.traces === 'loopback' ? await startTraceReceiver(traces!) : undefined;
    if (otlp) stops.push(() => otlp.server.close());
    // On by default: proxies without a collector of their own export here, a few new traces a second each.
    if (traces) registry.setTraces({ collector: otlp?.url ?? CONTROL_COLLECTOR, perSecond: DEFAULT_TRACES_PER_SECOND });

    /** An identity read for a reload, with a serving certificate of its own. */
    const withTls = async (n: ControlIdentity) => {
      const certLifetimeMs = lifetime(n.certLifetimeMs);
      return { ...n, certLifetimeMs, tls: await makeTls(n.issuer, n.issuerCertPem, certLifetimeMs) };
    };
    /** In service; the new identity epoch in the snapshot makes every proxy renew at once. */
    const adopted = (n: ControlIdentity) => {
      epoch = identityEpoch(n.trustAnchorsPem, n.issuerCertPem);
      registry.setIdentityEpoch(epoch);
      o.onIdentity?.(n);
      log(`control: identity reloaded (${splitPem(n.trustAnchorsPem).length} trust anchor(s), issuer valid until ${certInfo(n.issuerCertPem).notAfter.toISOString()}); proxies renew now`);
    };

    const certLifetimeMs = lifetime(id.certLifetimeMs);
    const server = createControlServer({
      trustDomain: o.trustDomain,
      trustAnchorsPem: id.trustAnchorsPem,
      issuer: id.issuer,
      issuerCertPem: id.issuerCertPem,
      certLifetimeMs,
      registry,
      auth: o.auth,
      validators: o.validators,
      telemetry,
      traces,
      proxies: platform.scrapeTargets && (() => platform.scrapeTargets!()),
      // Renewed at ~70% of its life, like a workload's (ControlServerOptions.renewTls), and on every reload.
      tls: await makeTls(id.issuer, id.issuerCertPem, certLifetimeMs),
      renewTls: makeTls,
      log,
      // On request (POST /v1/identity/reload): the server swaps it in when this returns.
      reloadIdentity: o.identity.watch ? undefined : async () => {
        const n = await withTls(await o.identity.read(true));
        adopted(n);
        return n;
      },
    });
    stops.push(async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    });

    // Watched: one reload at a time; what cannot be used (or half of an edit in progress) leaves the identity as it is.
    if (o.identity.watch) {
      let reloading = Promise.resolve();
      const reload = async () => {
        let read;
        try {
          read = await o.identity.read(true);
        } catch (err) {
          return log(`control: identity changed but not reloaded (the previous one stays): ${(err as Error).message}`);
        }
        if (identityEpoch(read.trustAnchorsPem, read.issuerCertPem) === epoch) return;
        const n = await withTls(read);
        server.applyIdentity(n);
        adopted(n);
      };
      const stopWatch = await o.identity.watch(() => {
        reloading = reloading.then(reload).catch((err: unknown) => log(`control: identity reload failed: ${(err as Error).message}`));
      });
      stops.push(async () => {
        stopWatch();
        await reloading;
      });
    }

    const port = await listen(server, o.port, o.address, 'control-plane', o.portHint);
    telemetry.start();
    return { port, registry, server, otlpUrl: otlp?.url, close };
  } catch (err) {
    await close();
    throw err;
  }
}
