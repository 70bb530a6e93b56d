// The outbound transport: the request goes to the chosen endpoint's proxy over mutual TLS, on
// its mesh/1 session (see wire/mux-client.ts), under the rule's timeout and retry policy.
import type { SecureContext } from 'node:tls';
import { performance } from 'node:perf_hooks';
import { ProxyError, respondError, type Handler, type Exchange } from '../exchange.js';
import { relay, type RelayHooks } from '../relay.js';
import { retryable } from '../routing.js';
import type { TcpStats } from '../metrics.js';
import { SessionPool } from '../wire/mux-client.js';
import { neverSent } from '../errors.js';
import type { Upstream } from '../wire/h1-client.js';

export interface MtlsTransport {
  sessions: SessionPool;
  /** The current client certificate; replaced on rotation, so new connections use the new one. */
  secureContext: SecureContext;
}

const MAX_RETRY_BODY = 64 * 1024;
/** Tries of a request that never reached a server, before the client gets the 502. */
const MAX_UNSENT_ATTEMPTS = 3;

class Timeout extends Error {
  constructor(readonly ms: number) {
    super(`no response within ${ms} ms`);
  }
}

function expire(up: Upstream, ms: number): void {
  up.destroy(new Timeout(ms));
}

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
    if (ex.timer !== null) {
      clearTimeout(ex.timer);
      ex.timer = null;
    }
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
  failed(ex, err, code, reused) {
    const now = Date.now();
    if (err instanceof Timeout) {
      // A timed-out request is never retried: it may still be running upstream.
      ejected(ex, now, false);
      ex.router?.target.stats.count('outbound_http_timeouts_total');
      respondError(ex, new ProxyError(504, `request timed out after ${err.ms} ms`, 'timeout'));
      return 'handled';
    }
    // A peer that cannot be reached or fails verification is ejected at once: it would take every
    // request the balancer gives it, fail them all, and look fast doing it.
    const unsent = neverSent(code);
    if (unsent) ejected(ex, now, code !== 'refused');
    // Nothing reached the server: a refused connection or stream, or a reused connection the
    // peer closed as we sent. Safe to send elsewhere, whatever the method.
    if ((unsent || (reused && err.code === 'ECONNRESET')) && (ex.replayable || ex.body !== null) && ex.attempts < MAX_UNSENT_ATTEMPTS) return 'retry';
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
  const up = t.sessions.request(ep.info.address, ep.info.port, ep.tls(t.secureContext), ex.req.method, ex.path, ex.headers, ep.tcp);
  const timeout = ex.rule?.timeoutMs ?? 0;
  if (timeout > 0) {
    // Per try, as the route model says; a timed-out try is never retried.
    ex.timer = setTimeout(expire, timeout, up, timeout);
  }
  relay(ex, up, hooks);
}

export function mtlsForward(t: MtlsTransport): Handler {
  return (ex: Exchange) => {
    // With retries on, a small body is read first so it can be sent again.
    if (ex.attempts === 1 && ex.rule?.retry && !ex.replayable && ex.body === null && retryable(ex)) {
      const cl = ex.req.contentLength;
      if (cl >= 0 && cl <= MAX_RETRY_BODY) return bufferBody(ex, () => send(t, ex));
    }
    send(t, ex);
  };
}

function bufferBody(ex: Exchange, then: () => void): void {
  const chunks: Buffer[] = [];
  ex.req.pipe({
    write(c: Buffer) {
      chunks.push(c);
      return true;
    },
    end() {
      ex.body = Buffer.concat(chunks);
      then();
    },
  });
}

/** One mTLS session per peer proxy; an idle one closes before the peer's 60 s idle timeout. */
export function newMtlsSessions(fallback?: TcpStats): SessionPool {
  return new SessionPool({ idleMs: 30_000, tcp: fallback });
}
