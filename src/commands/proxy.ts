// mesh proxy: the sidecar this binary embeds, for an app started separately.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { context, checked, platformOf } from './context.js';
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
    .option('--name <service>', 'service of the app (Kubernetes: the pod\'s ServiceAccount)')
    .option('--version <version>', 'version of the service', 'v1')
    .option('-n, --namespace <namespace>', 'namespace', 'default')
    .option('--app-port <port>', 'port the app listens on (127.0.0.1)')
    .option('--instance <name>', 'instance name (Kubernetes: the pod name)')
    .option('--inbound-port <port>', 'mTLS inbound listener port', '0')
    .option('--outbound-port <port>', 'outbound listener port', '0')
    .option('--admin-port <port>', 'admin listener port', '0')
    .option('--trust-anchors <file>', 'trust anchor bundle (default: from the state dir)')
    .action(async (f: Record<string, string>, cmd: Command) => {
      if (platformOf(cmd) === 'kubernetes') return runKubernetesProxy(f);
      for (const k of ['name', 'appPort', 'instance']) {
        if (f[k] === undefined) throw new MeshError(`mesh proxy needs --${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, "see 'mesh proxy --help'");
      }
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


/**
 * The injected sidecar: everything comes from the pod (downward API env, the projected
 * ServiceAccount token, the trust anchors); endpoints come from the cluster, not from registration.
 */
async function runKubernetesProxy(f: Record<string, string>): Promise<void> {
  const env = (name: string): string => {
    const v = process.env[name];
    if (!v) throw new MeshError(`${name} is not set`, 'mesh proxy --platform kubernetes runs in a pod injected by mesh inject');
    return v;
  };
  const tokenFile = env('MESH_IDENTITY_TOKEN_FILE');
  const readToken = () => {
    try {
      return readFileSync(tokenFile, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const namespace = env('MESH_NAMESPACE');
  const service = env('MESH_SERVICE_ACCOUNT');
  const pod = env('MESH_POD_NAME');
  const port = (v: string, what: string, zero = true) => checked(() => parsePort(v, what, zero), `pass ${what} 0-65535`);
  const inboundPort = port(f.inboundPort!, '--inbound-port');
  const outboundPort = port(f.outboundPort!, '--outbound-port');
  const adminPort = port(f.adminPort!, '--admin-port');
  const { parseInboundPorts, DEFAULT_APP_PORT, INBOUND_PORTS_ENV } = await import('../platform/kubernetes/inbound-ports.js');
  // One listener per declared app port (MESH_INBOUND_PORTS, from inject); the one on --inbound-port is the default,
  // where mesh-init sends every other port. Pods injected before it have only MESH_APP_PORT.
  const mapping = checked(() => parseInboundPorts(process.env[INBOUND_PORTS_ENV] ?? ''), "re-inject the pod ('mesh inject', or restart it for the webhook)");
  const own = [outboundPort, adminPort].filter(Boolean);
  const clash = mapping.find((m) => own.includes(m.listener));
  if (clash) throw new MeshError(`${INBOUND_PORTS_ENV} puts an inbound listener on port ${clash.listener}, which the proxy uses itself`, "re-inject the pod ('mesh inject', or restart it for the webhook)");
  const appPort = mapping.find((m) => m.listener === inboundPort)?.app ?? port(process.env.MESH_APP_PORT || String(DEFAULT_APP_PORT), 'MESH_APP_PORT', false);
  const extraInbound = mapping.filter((m) => m.listener !== inboundPort).map((m) => ({ port: m.listener, appPort: m.app }));
  const proxy = await startProxy({
    mode: 'sidecar', namespace, service, version: process.env.MESH_VERSION || 'v1', instance: pod, workload: process.env.MESH_WORKLOAD || undefined,
    trustDomain: env('MESH_TRUST_DOMAIN'), trustAnchorsPem: env('MESH_TRUST_ANCHORS'), controlAddress: env('MESH_CONTROL_ADDRESS'),
    joinToken: readToken, appPort, extraInbound, inboundPort, outboundPort, adminPort,
    // Peers reach the inbound listener, and the kubelet the admin one, on the pod's address.
    listenHost: '0.0.0.0',
    // kubelet probes and unmeshed clients reach the app through the same redirected port.
    inboundPlaintext: true,
    log: (m) => process.stderr.write(`[proxy ${pod}] ${m}\n`),
  });
  console.log(JSON.stringify({ outbound: proxy.outbound, inbound: proxy.inbound, admin: proxy.admin, inboundPorts: [
    { address: proxy.inbound, appPort }, ...proxy.extraInbound.map((x) => ({ address: x.address, appPort: x.appPort })),
  ] }));
  // Heartbeats only report the config this proxy applied: the cluster is the source of endpoints.
  proxy.register(process.pid);
  await waitForSignal();
  await proxy.close();
}
