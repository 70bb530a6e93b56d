// Transparent TCP capture on Kubernetes. mesh-init's iptables rules REDIRECT every outbound TCP connection of the pod
// to the outbound listener; the destination the app asked for is then only in conntrack, and the kernel gives it back
// through getsockopt(SO_ORIGINAL_DST) on the accepted socket. Node has no API for that, so a Node-API addon
// (native/original_dst.c, built by scripts/build-native.mjs) reads it: one syscall per connection (µs). Chosen over
// TPROXY (needs IP_TRANSPARENT on the listener, which Node cannot set), a listener per Service port (mesh-init
// cannot know them at pod start) and conntrack queries (need NET_ADMIN in the proxy).
// A cluster IP in the snapshot is that service (mTLS tunnel); any other address is egress, as a name outside the
// mesh is. HTTP (by the first bytes) still goes by its Host, unless the destination port is declared opaque.
import { createRequire } from 'node:module';
import type net from 'node:net';
import { openTcp, type TcpOutbound } from './tcp.js';
import { detect, DETECT_MS, refuse, toHttp, type Capture } from './tcp-listeners.js';
import { ORIGINAL_DST } from './layers/route.js';
import type { H1Server } from './wire/h1-server.js';
import type { TcpStats } from './metrics.js';
import type { PortSet } from '../model/ports.js';

export type Addon = { originalDst(fd: number): { address: string; port: number } | null };

/** Built next to dist/ (dist/src/proxy/ → native/build/), in the image as in a checkout. */
const ADDON_PATH = '../../../native/build/original_dst.node';
/** A refusal of captured traffic is logged at most this often (a client retrying in a loop must not flood the log). */
const LOG_EVERY_MS = 60_000;

let loaded: Addon | string | undefined;

/** The addon, or why it is not there. */
export function originalDstAddon(): Addon | string {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)(ADDON_PATH) as Addon;
    } catch (err) {
      loaded = `the original-destination addon is not loaded (${(err as Error).message.split('\n')[0]}); build it with 'npm run build' (needs a C compiler)`;
    }
  }
  return loaded;
}

/**
 * The original destination ("ip:port", "[v6]:port") of a connection iptables redirected to this socket's listener, or
 * null when it was not redirected (it came to the listener's own address). The fd is libuv's (`_handle.fd`, the
 * TCP handle's uv_fileno): Node exposes no other way to a socket's descriptor, and it is there on Linux, the only
 * platform with SO_ORIGINAL_DST.
 */
export function originalDestination(addon: Addon, sock: net.Socket): string | null {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return null;
  const dst = addon.originalDst(fd);
  if (dst === null || (dst.port === sock.localPort && (dst.address === sock.localAddress || `::ffff:${dst.address}` === sock.localAddress))) return null;
  return dst.address.includes(':') ? `[${dst.address}]:${dst.port}` : `${dst.address}:${dst.port}`;
}

/** The outbound listener's capture in a pod: connections carried to their original destination. */
export function transparentCapture(o: TcpOutbound, appConns: TcpStats, opaquePorts: PortSet | undefined, log: (m: string) => void, addon = originalDstAddon()): Capture {
  let lastLog = 0;
  const say = (m: string) => {
    const now = Date.now();
    if (now - lastLog < LOG_EVERY_MS) return;
    lastLog = now;
    log(m);
  };
  if (typeof addon === 'string') log(`transparent TCP capture is off: ${addon}; HTTP is still routed by its Host`);
  const tunnel = (sock: net.Socket, dst: string, read: Buffer | null) => {
    appConns.track(sock);
    openTcp(o, sock, dst, read, {
      open() {},
      refused: (code, reason) => {
        say(`captured TCP connection to ${dst} closed (${code}): ${reason}`);
        refuse(sock, false, code, reason);
      },
    });
  };
  return {
    take(http: H1Server, sock: net.Socket): boolean {
      if (typeof addon === 'string') return false;
      let dst: string | null;
      try {
        dst = originalDestination(addon, sock);
      } catch (err) {
        say(`cannot read a connection's original destination: ${(err as Error).message}`);
        return false;
      }
      if (dst === null) return false;
      if (opaquePorts?.has(Number(dst.slice(dst.lastIndexOf(':') + 1)))) {
        sock.pause();
        tunnel(sock, dst, null);
        return true;
      }
      // A CONNECT here was meant for whatever proxy the app dialled: bytes like any others, to that destination.
      // HTTP goes by its Host, and by where it was going when that is not in the mesh (route.ts).
      (sock as net.Socket & { [ORIGINAL_DST]?: string })[ORIGINAL_DST] = dst.slice(0, dst.lastIndexOf(':'));
      detect(sock, DETECT_MS, (kind, read) => (kind === 'http' ? toHttp(http, sock, read) : tunnel(sock, dst, read)));
      return true;
    },
    closed: (sock: net.Socket) => say(typeof addon === 'string'
      ? `opaque TCP on the outbound port closed: its original destination cannot be read (${addon})`
      : `opaque TCP on the outbound port closed: it was not redirected there (${sock.remoteAddress}:${sock.remotePort} dialled the port itself); use CONNECT or an upstream listener`),
  };
}
