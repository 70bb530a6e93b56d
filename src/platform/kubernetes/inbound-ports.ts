// Multi-port pods: Node cannot read SO_ORIGINAL_DST by itself (the outbound side does with an addon, capture.ts,
// which a build may lack), so inbound does without it: each declared app port gets its own inbound listener, which
// mesh-init redirects that port to; inject writes the mapping into MESH_INBOUND_PORTS ("4143=8080,4144=9090") and
// `mesh proxy` opens one listener each.
import { PROXY_PORTS } from './names.js';

/** One inbound listener of the proxy and the app port it forwards to (on 127.0.0.1). */
export interface InboundPort {
  listener: number;
  app: number;
}

export const INBOUND_PORTS_ENV = 'MESH_INBOUND_PORTS';

/** The app port when a pod declares none (what the proxy forwards to then, as before). */
export const DEFAULT_APP_PORT = 80;

/** Whether port is one of the skip annotation's entries ("9090" or a "9000:9100" range). */
export function inPortList(port: number, list: string[]): boolean {
  return list.some((e) => {
    const [lo, hi] = e.split(':').map(Number);
    return hi === undefined ? port === lo : port >= lo! && port <= hi;
  });
}

/**
 * Listeners for the app ports (declared order, duplicates and skipped ports left out). The first app port gets the
 * proxy's inbound port, the default that mesh-init sends every other port to; the others get the next ports above
 * it that no container declares and that are not the proxy's own or skipped. Deterministic: the same pod spec gives
 * the same mapping, so re-injecting changes nothing.
 */
export function assignInboundPorts(appPorts: number[], o: { declared?: number[]; skipInbound?: string[] } = {}): InboundPort[] {
  const skip = o.skipInbound ?? [];
  const ports = [...new Set(appPorts)].filter((p) => !inPortList(p, skip));
  const first = ports[0] ?? appPorts[0] ?? DEFAULT_APP_PORT;
  const taken = new Set<number>([...Object.values(PROXY_PORTS), ...(o.declared ?? []), ...appPorts]);
  const out: InboundPort[] = [{ listener: PROXY_PORTS.inbound, app: first }];
  let next = PROXY_PORTS.inbound + 1;
  for (const app of ports.slice(1)) {
    while (next <= 65535 && (taken.has(next) || inPortList(next, skip))) next++;
    if (next > 65535) break; // no free port left: the rest go to the default listener, as before
    out.push({ listener: next, app });
    taken.add(next++);
  }
  return out;
}

export const formatInboundPorts = (ports: InboundPort[]) => ports.map((p) => `${p.listener}=${p.app}`).join(',');

/** Parses MESH_INBOUND_PORTS; throws an Error saying which entry is wrong. */
export function parseInboundPorts(text: string): InboundPort[] {
  const out: InboundPort[] = [];
  for (const entry of text.split(',').map((e) => e.trim()).filter(Boolean)) {
    const m = /^(\d{1,5})=(\d{1,5})$/.exec(entry);
    const [listener, app] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
    if (!m || listener < 1 || listener > 65535 || app < 1 || app > 65535) throw new Error(`${INBOUND_PORTS_ENV} entry '${entry}' is not LISTENER_PORT=APP_PORT`);
    if (out.some((p) => p.listener === listener)) throw new Error(`${INBOUND_PORTS_ENV} names listener port ${listener} twice`);
    out.push({ listener, app });
  }
  return out;
}
