// `mesh control`: the local control plane in the foreground (mesh install starts it in the background), assembled
// by startControlPlane from the state dir: identity files, the registry file, join tokens, the admin credential.
import { loadIdentity } from './identity.js';
import { LocalControlPlatform } from './control-platform.js';
import { joinTokenFor, type StateDir } from './state.js';
import { writeJsonAtomic } from '../../util/fs.js';
import { VERSION } from '../../version.js';
import { startControlPlane } from '../../control/start.js';
import { CONFIG_VALIDATORS } from '../../control/validators.js';

export interface RunningControl {
  port: number;
  close(): Promise<void>;
}

export async function runControl(state: StateDir, opts: { port?: number; scrapeIntervalMs?: number } = {}): Promise<RunningControl> {
  const cfg = state.config();
  const joinKey = state.readSecret(state.joinKeyPath, 'the join key');
  const control = await startControlPlane({
    trustDomain: cfg.trustDomain,
    // Re-read on POST /v1/identity/reload (mesh identity rotate-issuer / rotate-anchor), strictly.
    identity: {
      read: async (reload) => {
        const id = loadIdentity(state, reload);
        return { trustAnchorsPem: id.anchorsPem, issuerCertPem: id.issuerCertPem, issuer: id.issuer, certLifetimeMs: id.certLifetimeMs };
      },
    },
    platform: new LocalControlPlatform(state),
    auth: { adminToken: state.adminToken(), joinTokenFor: (ns, sa) => joinTokenFor(joinKey, ns, sa) },
    validators: CONFIG_VALIDATORS,
    serving: { dnsNames: ['localhost'], ips: ['127.0.0.1'] },
    port: opts.port ?? cfg.controlPort,
    address: '127.0.0.1',
    portHint: 'stop whatever holds it, or re-install with another --control-port',
    scrapeIntervalMs: opts.scrapeIntervalMs ?? cfg.scrapeIntervalMs,
    // Spans the sidecars export (--trace-collector $(otlp in control.json)) are kept for the dashboard.
    traces: 'loopback',
    log: (line) => console.log(line),
  });
  const record = { pid: process.pid, port: control.port, version: VERSION, startedAt: new Date().toISOString(), otlp: control.otlpUrl };
  writeJsonAtomic(state.controlPath, record);
  console.log(`control plane ${VERSION} listening on https://127.0.0.1:${control.port} (state ${state.display})`);

  return {
    port: control.port,
    async close() {
      await control.close();
      // Kept with the time it stopped, so `mesh check` can say it ran and stopped (mesh uninstall removes it).
      writeJsonAtomic(state.controlPath, { ...record, stoppedAt: new Date().toISOString() });
    },
  };
}
