// mesh proxy on the local platform: a sidecar for an app started separately, registered with the control plane
// in the state directory once the app listens.
import { readFileSync } from 'node:fs';
import { startProxy } from '../../proxy/runtime.js';
import { portInUse, sleep } from '../../util/net.js';
import { checkName } from '../../model/snapshot.js';
import { parsePort } from '../../util/duration.js';
import { checked, MeshError } from '../../util/errors.js';
import type { StateDir } from './state.js';
import type { ProxyFlags, Running } from '../index.js';

export async function runLocalProxy(state: () => StateDir, f: ProxyFlags): Promise<Running> {
  const flag = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  for (const k of ['name', 'appPort', 'instance'] as const) {
    if (f[k] === undefined) throw new MeshError(`mesh proxy needs ${flag(k)}`, "see 'mesh proxy --help'");
  }
  const s = state();
  const cfg = s.config();
  checked(() => { checkName(f.name!, 'service name'); checkName(f.version!, 'version'); checkName(f.namespace!, 'namespace'); checkName(f.instance!, 'instance'); }, 'names are lower-case letters, digits and -');
  const port = (k: keyof ProxyFlags, zero = true) => checked(() => parsePort(f[k]!, flag(k), zero), `pass ${flag(k)} ${zero ? 0 : 1}-65535`);
  let anchors: string;
  try {
    anchors = f.trustAnchors ? readFileSync(f.trustAnchors, 'utf8') : s.readSecret(s.anchorCertPath, 'the trust anchor');
  } catch (err) {
    throw err instanceof MeshError ? err : new MeshError(`cannot read trust anchors ${f.trustAnchors}`, 'pass a readable PEM file');
  }
  const appPort = port('appPort', false);
  const proxy = await startProxy({
    mode: 'sidecar', namespace: f.namespace!, service: f.name!, version: f.version!, instance: f.instance!,
    trustDomain: cfg.trustDomain, trustAnchorsPem: anchors, controlAddress: `127.0.0.1:${cfg.controlPort}`,
    joinToken: process.env.MESH_JOIN_TOKEN || s.joinToken(f.namespace!, f.name!),
    cacheDir: s.proxyCacheDir(f.namespace!, f.name!), appPort,
    inboundPort: port('inboundPort'), outboundPort: port('outboundPort'), adminPort: port('adminPort'),
    log: (m) => process.stderr.write(`[proxy ${f.instance}] ${m}\n`),
  });
  console.log(JSON.stringify({ outbound: proxy.outbound, inbound: proxy.inbound, admin: proxy.admin }));
  let stop = false;
  void (async () => {
    while (!stop && !(await portInUse(appPort))) await sleep(200);
    if (!stop) proxy.register(process.pid);
  })();
  return {
    close: () => {
      stop = true;
      return proxy.close();
    },
  };
}
