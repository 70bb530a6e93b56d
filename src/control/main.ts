// `mesh control`: runs the control plane in the foreground (mesh install starts it in the background).
import type { AddressInfo } from 'node:net';
import { generateKey, certInfo, splitPem, DAY, type Issuer } from '../identity/ca.js';
import { loadIdentity } from '../platform/local/identity.js';
import { CONTROL_IDENTITY } from '../api/client.js';
import { LocalControlPlatform } from '../platform/local/control-platform.js';
import { joinTokenFor, type StateDir } from '../platform/local/state.js';
import { writeJsonAtomic } from '../util/fs.js';
import { MeshError } from '../util/errors.js';
import { VERSION } from '../version.js';
import { Registry } from './registry.js';
import { createControlServer } from './server.js';
import { Telemetry } from './telemetry/index.js';
import { CONFIG_VALIDATORS } from './validators.js';
import { identityEpoch } from '../identity/epoch.js';
import { startTraceReceiver, TraceStore } from './traces.js';


export interface RunningControl {
  port: number;
  close(): Promise<void>;
}

export async function runControl(state: StateDir, opts: { port?: number; scrapeIntervalMs?: number } = {}): Promise<RunningControl> {
  const cfg = state.config();
  // Variables: POST /v1/identity/reload swaps them (mesh identity rotate-issuer / rotate-anchor).
  let { anchorsPem: anchorPem, issuerCertPem, issuer } = loadIdentity(state, false);
  const joinKey = state.readSecret(state.joinKeyPath, 'the join key');
  const adminToken = state.adminToken();

  // The control plane's own certificate lives as long as a workload's (mesh install --cert-lifetime) and is renewed
  // like one, at ~70% of its life (ControlServerOptions.renewTls).
  const serverTls = async (signer: Issuer, chainPem: string, lifetimeMs: number) => {
    const kp = await generateKey();
    const cert = signer.issueLeaf({
      uri: CONTROL_IDENTITY(cfg.trustDomain),
      publicKeyPem: kp.publicKeyPem,
      lifetimeMs,
      ips: ['127.0.0.1'],
      dnsNames: ['localhost'],
    });
    return { cert: cert + chainPem, key: kp.keyPem };
  };
  const lifetimeMs = cfg.certLifetimeMs > 0 ? cfg.certLifetimeMs : DAY;

  const registry = new Registry(cfg.trustDomain, new LocalControlPlatform(state));
  registry.setIdentityEpoch(identityEpoch(anchorPem, issuerCertPem));
  const telemetry = new Telemetry(registry, { scrapeIntervalMs: opts.scrapeIntervalMs ?? cfg.scrapeIntervalMs, log: (m) => console.error(m) });
  // Spans the sidecars export (--trace-collector $(otlp in control.json)) are kept here for the dashboard.
  const traces = new TraceStore();
  const otlp = await startTraceReceiver(traces);
  const server = createControlServer({
    traces,
    trustDomain: cfg.trustDomain,
    trustAnchorsPem: anchorPem,
    issuer,
    issuerCertPem,
    certLifetimeMs: lifetimeMs,
    registry,
    telemetry,
    validators: CONFIG_VALIDATORS,
    auth: { adminToken, joinTokenFor: (ns, sa) => joinTokenFor(joinKey, ns, sa) },
    tls: await serverTls(issuer, issuerCertPem, lifetimeMs),
    renewTls: serverTls,
    log: (line) => console.log(line),
    reloadIdentity: async () => {
      const next = loadIdentity(state, true);
      const tls = await serverTls(next.issuer, next.issuerCertPem, next.certLifetimeMs > 0 ? next.certLifetimeMs : DAY);
      ({ anchorsPem: anchorPem, issuerCertPem, issuer } = next);
      registry.setIdentityEpoch(identityEpoch(anchorPem, issuerCertPem));
      console.log(`control plane: identity reloaded (${splitPem(anchorPem).length} trust anchor(s), issuer valid until ${certInfo(issuerCertPem).notAfter.toISOString()})`);
      return { trustAnchorsPem: next.anchorsPem, issuer: next.issuer, issuerCertPem: next.issuerCertPem, certLifetimeMs: next.certLifetimeMs, tls };
    },
  });
  const port = opts.port ?? cfg.controlPort;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE'
        ? new MeshError(`control-plane port 127.0.0.1:${port} is in use`, 'stop whatever holds it, or re-install with another --control-port')
        : err));
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  telemetry.start();
  const record = { pid: process.pid, port: actual, version: VERSION, startedAt: new Date().toISOString(), otlp: otlp.url };
  writeJsonAtomic(state.controlPath, record);
  console.log(`control plane ${VERSION} listening on https://127.0.0.1:${actual} (state ${state.display})`);

  return {
    port: actual,
    async close() {
      registry.close();
      await telemetry.close();
      otlp.server.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      // Kept with the time it stopped, so `mesh check` can say it ran and stopped (mesh uninstall removes it).
      writeJsonAtomic(state.controlPath, { ...record, stoppedAt: new Date().toISOString() });
    },
  };
}
