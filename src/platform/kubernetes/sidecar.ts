// mesh proxy --platform kubernetes: the sidecar that mesh inject (or the webhook) adds to a pod.
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { startProxy } from '../../proxy/runtime.js';
import { parsePort } from '../../util/duration.js';
import { checked, MeshError } from '../../util/errors.js';
import type { ProxyFlags, Running } from '../index.js';

/**
 * The injected sidecar: everything comes from the pod (downward API env, the projected
 * ServiceAccount token, the trust anchors); endpoints come from the cluster, not from registration.
 */
export async function runKubeProxy(f: ProxyFlags): Promise<Running> {
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
  const { parseInboundPorts, DEFAULT_APP_PORT, INBOUND_PORTS_ENV } = await import('./inbound-ports.js');
  // One listener per declared app port (MESH_INBOUND_PORTS, from inject); the one on --inbound-port is the default,
  // where mesh-init sends every other port. Pods injected before it have only MESH_APP_PORT.
  const mapping = checked(() => parseInboundPorts(process.env[INBOUND_PORTS_ENV] ?? ''), "re-inject the pod ('mesh inject', or restart it for the webhook)");
  const own = [outboundPort, adminPort].filter(Boolean);
  const clash = mapping.find((m) => own.includes(m.listener));
  if (clash) throw new MeshError(`${INBOUND_PORTS_ENV} puts an inbound listener on port ${clash.listener}, which the proxy uses itself`, "re-inject the pod ('mesh inject', or restart it for the webhook)");
  const appPort = mapping.find((m) => m.listener === inboundPort)?.app ?? port(process.env.MESH_APP_PORT || String(DEFAULT_APP_PORT), 'MESH_APP_PORT', false);
  const extraInbound = mapping.filter((m) => m.listener !== inboundPort).map((m) => ({ port: m.listener, appPort: m.app }));
  const { OPAQUE_PORTS_ENV, TRACE_COLLECTOR_ENV } = await import('./names.js');
  const { parsePortList } = await import('../../model/ports.js');
  const opaquePorts = checked(() => parsePortList(process.env[OPAQUE_PORTS_ENV] ?? ''), "fix the pod's mesh.io/opaque-ports annotation and re-inject it");
  // Spans go to mesh-control's API by default (the snapshot says so); a pod's own collector replaces it.
  const traceCollector = process.env[TRACE_COLLECTOR_ENV] || undefined;
  const proxy = await startProxy({
    mode: 'sidecar', namespace, service, version: process.env.MESH_VERSION || 'v1', instance: pod, workload: process.env.MESH_WORKLOAD || undefined,
    trustDomain: env('MESH_TRUST_DOMAIN'), trustAnchorsPem: env('MESH_TRUST_ANCHORS'), controlAddress: env('MESH_CONTROL_ADDRESS'),
    joinToken: readToken, appPort, extraInbound, inboundPort, outboundPort, adminPort, opaquePorts, traceCollector,
    // Peers reach the inbound listener, and the kubelet the admin one, on the pod's address: its IPv6 one too, where
    // the pod has IPv6 ('::' takes both families); mesh-init's ip6tables rules send the app's IPv6 TCP to [::1].
    ...(hasIPv6() ? { listenHost: '::', outboundHost6: '::1' } : { listenHost: '0.0.0.0' }),
    // kubelet probes and unmeshed clients reach the app through the same redirected port.
    inboundPlaintext: true,
    // mesh-init redirects the pod's outbound TCP to the outbound listener: opaque connections go to their original destination.
    transparent: true,
    log: (m) => process.stderr.write(`[proxy ${pod}] ${m}\n`),
  });
  console.log(JSON.stringify({ outbound: proxy.outbound, inbound: proxy.inbound, admin: proxy.admin, inboundPorts: [
    { address: proxy.inbound, appPort }, ...proxy.extraInbound.map((x) => ({ address: x.address, appPort: x.appPort })),
  ] }));
  // Heartbeats only report the config this proxy applied: the cluster is the source of endpoints.
  proxy.register(process.pid);
  return proxy;
}

/** Whether the pod's network has IPv6 at all (its loopback has ::1 unless IPv6 is off in the kernel or the pod). */
function hasIPv6(): boolean {
  return Object.values(networkInterfaces()).some((list) => list?.some((a) => a.family === 'IPv6'));
}
