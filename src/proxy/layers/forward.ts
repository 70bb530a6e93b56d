// The outbound transport: the request goes to the chosen endpoint's proxy over mutual TLS,
// on pooled keep-alive connections.
import https from 'node:https';
import type { SecureContext } from 'node:tls';
import type { Socket } from 'node:net';
import type { TcpStats } from '../metrics.js';
import type { Handler, Exchange } from '../exchange.js';
import { relay, type RelayHooks } from '../relay.js';

export interface MtlsTransport {
  agent: https.Agent;
  /** The current client certificate; replaced on rotation, so new connections use the new one. */
  secureContext: SecureContext;
}

const hooks: RelayHooks = {
  done(ex) {
    ex.endpoint!.inflight--;
  },
  failed(ex, err, connectFailure, reused) {
    const ep = ex.endpoint!;
    if (connectFailure || err.code?.startsWith('ERR_TLS') || err.message.startsWith('peer ')) ep.markDown(Date.now());
    // A reset on a reused keep-alive connection means the peer closed it as we sent: safe to resend.
    const retry = (connectFailure || (reused && err.code === 'ECONNRESET')) && ex.replayable && ex.attempts < 3;
    if (retry) ex.rebalance!(ex);
    return retry;
  },
  describe(ex) {
    const ep = ex.endpoint!.info;
    return `${ep.service}.${ep.namespace} endpoint ${ep.instance}`;
  },
};

export function mtlsForward(t: MtlsTransport): Handler {
  return (ex: Exchange) => {
    const ep = ex.endpoint!;
    ep.inflight++;
    const up = https.request({
      agent: t.agent,
      host: ep.info.address,
      port: ep.info.port,
      method: ex.req.method,
      path: ex.path,
      headers: ex.headers as unknown as Record<string, string>,
      servername: ep.servername,
      checkServerIdentity: ep.checkServerIdentity,
      secureContext: t.secureContext,
      setHost: false,
    } as https.RequestOptions);
    relay(ex, up, hooks);
  };
}

export function newMtlsAgent(tcp?: TcpStats): https.Agent {
  // LIFO keeps the fewest connections hot; idle ones close before the peer's 60 s keep-alive.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 64, scheduling: 'lifo', timeout: 30_000 });
  if (tcp) {
    const create = agent.createConnection.bind(agent) as (...a: unknown[]) => Socket;
    (agent as unknown as { createConnection: (...a: unknown[]) => Socket }).createConnection = (...args: unknown[]) => {
      const sock = create(...args);
      tcp.track(sock);
      return sock;
    };
  }
  return agent;
}
