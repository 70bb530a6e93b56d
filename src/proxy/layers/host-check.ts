// The inbound side's first layer: the request's target read by normalize's rules, carrying the
// peer's verified identity on, and the app port its Host names (a pod's other declared ports).
import type { Layer } from '../exchange.js';
import { readTarget } from './normalize.js';

export interface AppPorts {
  /** The listener's app port: where a request goes unless its Host names another. */
  appPort: number;
  /**
   * Other app ports a request may name in its Host (Kubernetes: the pod's other declared ports).
   * Peers dial the default inbound port whatever the service port, so `shop:9090` says where it goes.
   */
  hostPorts?: ReadonlySet<number>;
  /**
   * The workload's Service ports → the ports they target (Kubernetes; swapped on config pushes), so `shop:80` goes
   * to the app port behind Service port 80. Only used with hostPorts.
   */
  servicePorts?: () => ReadonlyMap<number, number>;
}

/**
 * The app port a request goes to: the one its Host's port targets (a Service port maps to its targetPort, any other
 * port stands for itself), if the pod declares it, else the listener's. A Host without a port is port 80 for the
 * Service port map only.
 */
export function appPortFor(o: AppPorts, host: string): number {
  if (o.hostPorts === undefined) return o.appPort;
  const colon = host.lastIndexOf(':');
  const bare = colon < 0 || host.endsWith(']');
  const p = bare ? 80 : Number(host.slice(colon + 1));
  const target = o.servicePorts?.().get(p) ?? (bare ? o.appPort : p);
  return o.hostPorts.has(target) ? target : o.appPort;
}

export const hostCheck = (o: AppPorts): Layer => (next) => (ex) => {
  // The verified peer identity replaces anything a client sent under that name.
  const t = readTarget(ex, ex.peer === '' ? null : ex.peer);
  if (t === null) return;
  ex.appPort = appPortFor(o, t.authority);
  next(ex);
};
