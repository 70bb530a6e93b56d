// Installing the mesh on the local platform: identity, secrets and config in the state dir.
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { createIssuer, createTrustAnchor, DAY } from '../../identity/ca.js';
import { freePort } from '../../util/net.js';
import { writeFileAtomic, writeJsonAtomic } from '../../util/fs.js';
import { VERSION } from '../../version.js';
import type { MeshConfig, StateDir } from './state.js';

export interface InstallOptions {
  trustDomain: string;
  controlPort?: number;
  certLifetimeMs?: number;
  scrapeIntervalMs?: number;
}

/** Creates identity, secrets and config; on any failure removes what it wrote. */
export async function initState(state: StateDir, o: InstallOptions): Promise<MeshConfig> {
  state.ensureWritable();
  const written: string[] = [];
  const put = (path: string, data: string, mode: number) => {
    writeFileAtomic(path, data, mode);
    written.push(path);
  };
  try {
    mkdirSync(state.path('identity'), { recursive: true, mode: 0o700 });
    const anchor = await createTrustAnchor(o.trustDomain);
    const issuer = await createIssuer(o.trustDomain, anchor);
    put(state.anchorCertPath, anchor.certPem, 0o644);
    put(state.anchorKeyPath, anchor.keyPem, 0o600);
    put(state.issuerCertPath, issuer.certPem, 0o644);
    put(state.issuerKeyPath, issuer.keyPem, 0o600);
    put(state.joinKeyPath, randomBytes(32).toString('base64url'), 0o600);
    put(state.adminTokenPath, randomBytes(32).toString('base64url'), 0o600);
    const cfg: MeshConfig = {
      platform: 'local',
      trustDomain: o.trustDomain,
      controlPort: o.controlPort || (await freePort()),
      version: VERSION,
      createdAt: new Date().toISOString(),
      certLifetimeMs: o.certLifetimeMs ?? DAY,
      ...(o.scrapeIntervalMs ? { scrapeIntervalMs: o.scrapeIntervalMs } : {}),
    };
    // The config goes last: its presence is what marks the state dir as installed.
    writeJsonAtomic(state.configPath, cfg);
    return cfg;
  } catch (err) {
    for (const p of written) rmSync(p, { force: true });
    throw err;
  }
}

