// mesh proxy: the sidecar this binary embeds, for an app started separately.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { context, checked } from './context.js';
import { startProxy } from '../proxy/runtime.js';
import { portInUse, sleep } from '../util/net.js';
import { checkName } from '../model/snapshot.js';
import { parsePort } from '../util/duration.js';
import { MeshError } from '../util/errors.js';
import { waitForSignal } from '../util/signals.js';

export function registerProxy(program: Command): void {
  program
    .command('proxy')
    .description('run a sidecar proxy for an app started separately')
    .requiredOption('--name <service>', 'service of the app')
    .option('--version <version>', 'version of the service', 'v1')
    .option('-n, --namespace <namespace>', 'namespace', 'default')
    .requiredOption('--app-port <port>', 'port the app listens on (127.0.0.1)')
    .requiredOption('--instance <name>', 'instance name')
    .option('--inbound-port <port>', 'mTLS inbound listener port', '0')
    .option('--outbound-port <port>', 'outbound listener port', '0')
    .option('--admin-port <port>', 'admin listener port', '0')
    .option('--trust-anchors <file>', 'trust anchor bundle (default: from the state dir)')
    .action(async (f: Record<string, string>, cmd: Command) => {
      const { state } = context(cmd, true);
      const cfg = state.config();
      checked(() => { checkName(f.name!, 'service name'); checkName(f.version!, 'version'); checkName(f.namespace!, 'namespace'); checkName(f.instance!, 'instance'); }, 'names are lower-case letters, digits and -');
      const port = (k: string, zero = true) => checked(() => parsePort(f[k]!, k, zero), `pass --${k} 0-65535`);
      let anchors: string;
      try {
        anchors = f.trustAnchors ? readFileSync(f.trustAnchors, 'utf8') : state.readSecret(state.anchorCertPath, 'the trust anchor');
      } catch (err) {
        throw err instanceof MeshError ? err : new MeshError(`cannot read trust anchors ${f.trustAnchors}`, 'pass a readable PEM file');
      }
      const appPort = port('appPort', false);
      const proxy = await startProxy({
        mode: 'sidecar', namespace: f.namespace!, service: f.name!, version: f.version!, instance: f.instance!,
        trustDomain: cfg.trustDomain, trustAnchorsPem: anchors, controlAddress: `127.0.0.1:${cfg.controlPort}`,
        joinToken: process.env.MESH_JOIN_TOKEN || state.joinToken(f.namespace!, f.name!),
        cacheDir: state.proxyCacheDir(f.namespace!, f.name!), appPort,
        inboundPort: port('inboundPort'), outboundPort: port('outboundPort'), adminPort: port('adminPort'),
        log: (m) => process.stderr.write(`[proxy ${f.instance}] ${m}\n`),
      });
      console.log(JSON.stringify({ outbound: proxy.outbound, inbound: proxy.inbound, admin: proxy.admin }));
      let stop = false;
      void (async () => {
        while (!stop && !(await portInUse(appPort))) await sleep(200);
        if (!stop) proxy.register(process.pid);
      })();
      await waitForSignal();
      stop = true;
      await proxy.close();
    });
}

