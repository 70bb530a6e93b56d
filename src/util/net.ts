// Loopback port helpers for the local platform and its tests.
import net from 'node:net';
import { readFileSync } from 'node:fs';

/**
 * Where ports the mesh hands to apps (demo apps, a control plane) come from: below the kernel's ephemeral
 * range. A port from bind(0) is in that range, and before its app binds it any outgoing connection on the
 * machine may take it.
 */
const [PORT_LOW, PORT_HIGH] = ((): [number, number] => {
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {
    // not Linux: its usual range
  }
  return low > 12_000 ? [low - 10_000, low - 1] : [40_000, 49_999];
})();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A loopback port free now, none of `taken`'s (which it joins). */
export async function freePort(taken?: Set<number>): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = PORT_LOW + Math.floor(Math.random() * (PORT_HIGH - PORT_LOW + 1));
    if (taken?.has(port) || !(await bindable(port))) continue;
    taken?.add(port);
    return port;
  }
  throw new Error(`no free loopback port in ${PORT_LOW}-${PORT_HIGH} after 100 tries`);
}

export function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
