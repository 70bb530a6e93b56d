// The real views `mesh check` runs its checkers over on the local platform: the state dir, the
// control plane's API and the proxies' admin listeners.
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import tls from 'node:tls';
import type { MeshView, ProxyView } from '../../check/local.js';
import type { PreView } from '../../check/pre.js';
import { ControlUnreachable } from '../../api/client.js';
import { portInUse } from '../../util/net.js';
import { VERSION } from '../../version.js';
import { adminClient } from './control.js';
import { rotationState } from './identity.js';
import { probeProxy } from './probe.js';
import { adminRequest } from './rotation.js';
import { isMeshProcess, recordAlive, type StateDir } from './state.js';

async function admin<T>(state: StateDir, path: string): Promise<T> {
  const r = await adminRequest<T & { error?: string }>(state, 'GET', path);
  if (!r) throw new Error(`the control plane at 127.0.0.1:${state.config().controlPort} does not answer`);
  if (r.status === 200) return r.body;
  if (r.status === 401) throw new Error(`the control plane refused the admin credential in ${state.display}: the state dir belongs to another install`);
  if (r.status === 404) throw new Error(`the running control plane does not offer ${path}: it is older than this CLI; restart it ('mesh uninstall', 'mesh install')`);
  throw new Error(`the control plane answered ${r.status} to GET ${path}: ${r.body?.error ?? ''}`);
}

export function localMeshView(state: StateDir): MeshView {
  return {
    now: () => Date.now(),
    cliVersion: VERSION,
    where: state.display,
    installed: () => state.isInstalled(),
    controlProcess: () => {
      const rec = state.control();
      if (!rec) return undefined;
      const alive = !rec.stoppedAt && isMeshProcess(rec.pid);
      let lastLogAt: string | undefined;
      try {
        lastLogAt = alive || rec.stoppedAt ? undefined : statSync(state.controlLog).mtime.toISOString();
      } catch {
        // no log: nothing to say
      }
      return { pid: rec.pid, alive, startedAt: rec.startedAt, stoppedAt: rec.stoppedAt, lastLogAt, log: state.controlLog };
    },
    serverVersion: async () => {
      const client = adminClient(state);
      try {
        const r = await client.request<{ version: string }>('GET', '/v1/version', undefined, { timeoutMs: 3000 });
        if (r.status !== 200) throw new Error(`the control plane answered ${r.status} to GET /v1/version`);
        return r.body.version;
      } catch (err) {
        if (err instanceof ControlUnreachable) throw new Error(err.message);
        throw err;
      } finally {
        client.close();
      }
    },
    proxies: () => admin<ProxyView[]>(state, '/v1/endpoints'),
    snapshotVersion: async () => (await admin<{ version: string }>(state, '/v1/snapshot')).version,
    identityFiles: () => ({
      anchorsPem: state.readSecret(state.anchorCertPath, 'the trust anchor'),
      issuerCertPem: state.readSecret(state.issuerCertPath, 'the issuer certificate'),
      issuerKeyPem: state.readSecret(state.issuerKeyPath, 'the issuer key'),
    }),
    servedIdentity: () => admin<{ trustAnchors: string; issuer: string; certLifetimeMs: number }>(state, '/v1/identity'),
    rotation: () => rotationState(state),
    runningWorkloads: () => state.workloads().filter((w) => w.kind !== 'process' && w.state === 'running' && recordAlive(w)).map((w) => w.instance),
    probe: (addr) => probeProxy(addr),
    stoppedApps: () => state.workloads().flatMap((w) => {
      const how = `${w.exitSignal ?? `code ${w.exitCode ?? '?'}`} at ${w.exitedAt ?? '?'}`;
      if (w.state === 'exited') return [`${w.instance}: its app exited with ${how}; see ${w.log ?? 'its log'}, then 'mesh stop ${w.instance}' to clear it`];
      if (w.state === 'restarting' && recordAlive(w)) return [`${w.instance}: its app exited with ${how} and is restarting (${w.restarts ?? 0} restarts so far); see ${w.log ?? 'its log'}`];
      return [];
    }),
  };
}

export function localPreView(state: StateDir, controlPort?: number): PreView {
  return {
    nodeVersion: process.version,
    tls13: () => tls.getCiphers().some((c) => c.startsWith('tls_aes_')) && tls.DEFAULT_MAX_VERSION === 'TLSv1.3',
    where: state.display,
    stateDirProblem: () => {
      // Nothing is created here: the nearest existing directory must let us create the rest.
      let dir = state.root;
      while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
      try {
        if (!statSync(dir).isDirectory()) return `${dir} is not a directory`;
        accessSync(dir, constants.W_OK | constants.X_OK);
        return undefined;
      } catch (err) {
        return `${dir} is not writable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
      }
    },
    installed: () => state.isInstalled(),
    controlRunning: () => {
      const rec = state.control();
      return !!rec && isMeshProcess(rec.pid);
    },
    controlPort: () => {
      if (controlPort !== undefined) return controlPort;
      if (!state.isInstalled()) return undefined;
      const rec = state.control();
      // Our own running control plane holds it: that is not a conflict.
      if (rec && isMeshProcess(rec.pid)) return undefined;
      return state.config().controlPort;
    },
    portInUse,
  };
}
