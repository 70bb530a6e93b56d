// `mesh control`: runs the control plane in the foreground (mesh install starts it in the background).
import { rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Issuer, generateKey, DAY } from '../identity/ca.js';
import { formatIdentity } from '../identity/spiffe.js';
import { LocalControlPlatform } from '../platform/local/control-platform.js';
import { joinTokenFor, type StateDir } from '../platform/local/state.js';
import { writeJsonAtomic } from '../util/fs.js';
import { MeshError } from '../util/errors.js';
import { VERSION } from '../version.js';
import { Registry } from './registry.js';
import { createControlServer } from './server.js';
import { Telemetry } from './telemetry/index.js';
import { CONFIG_VALIDATORS } from './validators.js';

export const CONTROL_IDENTITY = (trustDomain: string) =>
  formatIdentity({ trustDomain, namespace: 'mesh-system', serviceAccount: 'mesh-control' });

export interface RunningControl {
  port: number;
  close(): Promise<void>;
}

export async function runControl(state: StateDir, opts: { port?: number; scrapeIntervalMs?: number } = {}): Promise<RunningControl> {
  const cfg = state.config();
  const anchorPem = state.readSecret(state.anchorCertPath, 'the trust anchor');
  const issuerCertPem = state.readSecret(state.issuerCertPath, 'the issuer certificate') + '\n';
  const issuerKeyPem = state.readSecret(state.issuerKeyPath, 'the issuer key');
  const joinKey = state.readSecret(state.joinKeyPath, 'the join key');
  const adminToken = state.adminToken();
  let issuer: Issuer;
  try {
    issuer = new Issuer({ certPem: issuerCertPem, keyPem: issuerKeyPem });
  } catch {
    throw new MeshError(`the issuer in ${state.display}/identity cannot be read`, "restore it, or run 'mesh uninstall --purge' and 'mesh install'");
  }

  const serverTls = async () => {
    const kp = await generateKey();
    const cert = issuer.issueLeaf({
      uri: CONTROL_IDENTITY(cfg.trustDomain),
      publicKeyPem: kp.publicKeyPem,
      lifetimeMs: DAY,
      ips: ['127.0.0.1'],
      dnsNames: ['localhost'],
    });
    return { cert: cert + issuerCertPem, key: kp.keyPem };
  };

  const registry = new Registry(cfg.trustDomain, new LocalControlPlatform(state));
  const telemetry = new Telemetry(registry, { scrapeIntervalMs: opts.scrapeIntervalMs ?? cfg.scrapeIntervalMs, log: (m) => console.error(m) });
  const server = createControlServer({
    trustDomain: cfg.trustDomain,
    trustAnchorsPem: anchorPem,
    issuer,
    issuerCertPem,
    certLifetimeMs: cfg.certLifetimeMs,
    registry,
    telemetry,
    validators: CONFIG_VALIDATORS,
    auth: { adminToken, joinTokenFor: (ns, sa) => joinTokenFor(joinKey, ns, sa) },
    tls: await serverTls(),
  });
  // The control plane's own certificate is short-lived too.
  const renew = setInterval(async () => {
    try {
      server.setSecureContext({ ...(await serverTls()), ca: anchorPem, minVersion: 'TLSv1.3' });
    } catch (err) {
      console.error(`control: renewing own certificate failed: ${(err as Error).message}`);
    }
  }, 0.7 * DAY);
  renew.unref();

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
  writeJsonAtomic(state.controlPath, { pid: process.pid, port: actual, version: VERSION, startedAt: new Date().toISOString() });
  console.log(`control plane ${VERSION} listening on https://127.0.0.1:${actual} (state ${state.display})`);

  return {
    port: actual,
    async close() {
      clearInterval(renew);
      registry.close();
      await telemetry.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(state.controlPath, { force: true });
    },
  };
}
