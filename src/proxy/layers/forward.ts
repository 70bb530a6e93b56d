// The outbound transport: the request goes to the chosen endpoint's proxy over mutual TLS, on
// pooled keep-alive connections, under the rule's timeout and retry policy.
import https from 'node:https';
import type { SecureContext } from 'node:tls';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { ProxyError, respondError, type Handler, type Exchange } from '../exchange.js';
import { relay, type RelayHooks } from '../relay.js';
import { retryable } from '../routing.js';
import type { TcpStats } from '../metrics.js';

export interface MtlsTransport {
  agent: https.Agent;
  /** The current client certificate; replaced on rotation, so new connections use the new one. */
  secureContext: SecureContext;
}

const MAX_RETRY_BODY = 64 * 1024;

class Timeout extends Error {
  constructor(readonly ms: number) {
    super(`no response within ${ms} ms`);
  }
}

const timers = new WeakMap<Exchange, NodeJS.Timeout>();

function ejected(ex: Exchange, now: number, connect: boolean): void {
  if (ex.endpoint!.failed(now, connect)) ex.router?.target.stats.count('outbound_endpoint_ejections_total');
}

/** Whether one more attempt is allowed: the rule's count, idempotence, a replayable body, the budget. */
function mayRetry(ex: Exchange): boolean {
  const r = ex.rule?.retry;
  if (!r || ex.attempts > r.attempts || !(ex.replayable || ex.body !== null) || !retryable(ex)) return false;
  if (!ex.router!.budget.withdraw(Date.now())) {
    ex.router!.target.stats.count('outbound_http_retry_budget_exhausted_total');
    return false;
  }
  ex.router!.target.stats.count('outbound_http_retries_total');
  return true;
}

const hooks: RelayHooks = {
  done(ex) {
    ex.endpoint!.inflight--;
    const t = timers.get(ex);
    if (t) clearTimeout(t);
  },
  response(ex, status) {
    const now = Date.now();
    if (status >= 500) {
      ejected(ex, now, false);
      return ex.rule?.retry?.on5xx === true && mayRetry(ex);
    }
    // A handshake's time says nothing about the endpoint's load: count the success, not the latency.
    ex.endpoint!.succeeded(ex.freshConnection ? -1 : performance.now() - ex.sent, now);
    return false;
  },
  failed(ex, err, connectFailure, reused) {
    const now = Date.now();
    if (err instanceof Timeout) {
      // A timed-out request is never retried: it may still be running upstream.
      ejected(ex, now, false);
      ex.router?.target.stats.count('outbound_http_timeouts_total');
      respondError(ex, new ProxyError(504, `request timed out after ${err.ms} ms`));
      return 'handled';
    }
    const tls = err.code?.startsWith('ERR_TLS') || err.message.startsWith('peer ');
    if (connectFailure || tls) ejected(ex, now, true);
    // Nothing reached the server: a refused connection, or a reused keep-alive connection the
    // peer closed as we sent. Safe to send elsewhere, whatever the method.
    if ((connectFailure || (reused && err.code === 'ECONNRESET')) && (ex.replayable || ex.body !== null) && ex.attempts < 3) return 'retry';
    if (ex.rule?.retry?.onConnect && mayRetry(ex)) return 'retry';
    return 'fail';
  },
  describe(ex) {
    const ep = ex.endpoint!.info;
    return `${ep.service}.${ep.namespace} endpoint ${ep.instance}`;
  },
};

function send(t: MtlsTransport, ex: Exchange): void {
  const ep = ex.endpoint!;
  ep.inflight++;
  ex.sent = performance.now();
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
    meshTcp: ep.tcp,
  } as https.RequestOptions);
  const timeout = ex.rule?.timeoutMs ?? 0;
  if (timeout > 0) {
    // Per try, as the route model says; a timed-out try is never retried.
    timers.set(ex, setTimeout(() => up.destroy(new Timeout(timeout)), timeout));
  }
  relay(ex, up, hooks);
}

export function mtlsForward(t: MtlsTransport): Handler {
  return (ex: Exchange) => {
    // With retries on, a small body is read first so it can be sent again.
    if (ex.attempts === 1 && ex.rule?.retry && !ex.replayable && ex.body === null && retryable(ex)) {
      const cl = Number(ex.req.headers['content-length'] ?? NaN);
      if (cl <= MAX_RETRY_BODY) return bufferBody(ex, () => send(t, ex));
    }
    send(t, ex);
  };
}

function bufferBody(ex: Exchange, then: () => void): void {
  const chunks: Buffer[] = [];
  ex.req.on('data', (c: Buffer) => chunks.push(c));
  ex.req.on('end', () => {
    ex.body = Buffer.concat(chunks);
    then();
  });
}

/** `meshTcp` in a request's options names the stats its connection (if it makes one) counts under. */
export function newMtlsAgent(fallback?: TcpStats): https.Agent {
  // LIFO keeps the fewest connections hot; idle ones close before the peer's 60 s keep-alive.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 64, scheduling: 'lifo', timeout: 30_000 });
  // Every option that shapes a connection is the same for one endpoint address, so the pool key
  // can be the address alone instead of Node's long per-request string.
  (agent as unknown as { getName: (o: { host: string; port: number }) => string }).getName = (o) => `${o.host}:${o.port}`;
  const create = agent.createConnection.bind(agent) as (...a: unknown[]) => Socket;
  (agent as unknown as { createConnection: (...a: unknown[]) => Socket }).createConnection = (...args: unknown[]) => {
    const sock = create(...args);
    ((args[0] as { meshTcp?: TcpStats }).meshTcp ?? fallback)?.track(sock);
    return sock;
  };
  return agent;
}
