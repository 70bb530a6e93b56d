// The outbound transport: the request goes to the chosen endpoint's proxy over mutual TLS, on its
// mesh/1 session (see wire/mux-client.ts). It decides nothing: how each try went goes up to the
// layers above (balance, timeout, retry), which decide.
import type { SecureContext } from 'node:tls';
import { TOP, type Exchange } from '../exchange.js';
import { relay, type Relaying } from '../relay.js';
import { relayUpgrade } from '../upgrade.js';
import type { TcpStats } from '../metrics.js';
import { SessionPool } from '../wire/mux-client.js';
import { now as clockNow } from '../../util/clock.js';

export interface MtlsTransport {
  sessions: SessionPool;
  /** The current client certificate; replaced on rotation, so new connections use the new one. */
  secureContext: SecureContext;
}

function describe(ex: Exchange): string {
  const ep = ex.endpoint!.info;
  return `${ep.service}.${ep.namespace} endpoint ${ep.instance}`;
}

/** The bottom of the outbound stack; its report is set when the stack is built. */
export function mtlsForward(t: MtlsTransport): Relaying {
  const self: Relaying = {
    send(ex) {
      const ep = ex.endpoint!;
      ex.sent = clockNow();
      relay(ex, t.sessions.request(ep.info.address, ep.info.port, ep.tls(t.secureContext), ex.req.method, ex.path, ex.headers, ep.tcp), self);
    },
    report: TOP,
    describe,
  };
  return self;
}

/** The bottom of the outbound stack for upgrades: an upgrade stream on the peer's mesh/1 session. */
export function mtlsUpgrade(t: MtlsTransport): Relaying {
  const self: Relaying = {
    send(ex) {
      const ep = ex.endpoint!;
      ex.sent = clockNow();
      relayUpgrade(ex, t.sessions.upgrade(ep.info.address, ep.info.port, ep.tls(t.secureContext), ex.path, ex.headers, ep.tcp), self);
    },
    report: TOP,
    describe,
  };
  return self;
}

/** One mTLS session per peer proxy; an idle one closes before the peer's 60 s idle timeout. */
export function newMtlsSessions(fallback?: TcpStats): SessionPool {
  return new SessionPool({ idleMs: 30_000, tcp: fallback });
}
