// Each per-request layer alone, with a fake `next` below it and a fake report above it: what it
// answers (by error code), what it hands down, and what it does with how a try went.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { Exchange, stack, TOP, type Handler, type Layer, type Report } from '../src/proxy/exchange.js';
import { MeshFault, ERROR_HEADER, ERROR_INDEX, type ErrorCode } from '../src/proxy/errors.js';
import { RequestStats } from '../src/proxy/metrics.js';
import { Target } from '../src/proxy/balancer.js';
import { ServiceRouter, type CompiledRule } from '../src/proxy/routing.js';
import { normalize } from '../src/proxy/layers/normalize.js';
import { observe } from '../src/proxy/layers/observe.js';
import { route } from '../src/proxy/layers/route.js';
import { fault } from '../src/proxy/layers/fault.js';
import { retry, MAX_UNSENT_ATTEMPTS } from '../src/proxy/layers/retry.js';
import { reconnect } from '../src/proxy/layers/reconnect.js';
import { timeout } from '../src/proxy/layers/timeout.js';
import { formatGrpcTimeout, grpcTimeoutMs } from '../src/proxy/wire/grpc-status.js';
import { balance } from '../src/proxy/layers/balance.js';
import { mtlsForward, type MtlsTransport } from '../src/proxy/layers/forward.js';
import { hostCheck } from '../src/proxy/layers/host-check.js';
import { authorize } from '../src/proxy/layers/authorize.js';
import { admit } from '../src/proxy/layers/admit.js';
import { toApp } from '../src/proxy/layers/to-app.js';
import { Gate } from '../src/proxy/gate.js';
import { UpgradeRes, upgradeExchange } from '../src/proxy/upgrade.js';
import { compilePolicy, newPolicy } from '../src/model/policy.js';
import type { Req, Res } from '../src/proxy/wire/h1-server.js';
import type { Pool } from '../src/proxy/wire/h1-client.js';
import { Telemetry } from '../src/proxy/telemetry.js';
import type { EndpointInfo } from '../src/model/snapshot.js';

class FakeRes extends EventEmitter {
  statusCode = 200;
  headersSent = false;
  writableFinished = false;
  destroyed = false;
  shouldKeepAlive = true;
  bodyBytes = 0;
  headers: string[] = [];
  body = '';
  socket = new EventEmitter() as unknown as Socket;
  writeHead(status: number, _reason: string | undefined, raw: string[]): this {
    this.statusCode = status;
    this.headers = raw;
    return this;
  }
  write(chunk: Buffer): boolean {
    this.headersSent = true;
    this.body += chunk.toString();
    return true;
  }
  end(chunk?: Buffer): void {
    this.headersSent = true;
    this.writableFinished = true;
    if (chunk) this.body += chunk.toString();
    this.emit('close');
  }
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
  header(name: string): string | undefined {
    const i = this.headers.indexOf(name);
    return i < 0 ? undefined : this.headers[i + 1];
  }
}

interface ReqInit {
  method?: string;
  url?: string;
  headers?: [string, string][];
  body?: string;
}

function fakeReq(o: ReqInit = {}): Req {
  const raw = (o.headers ?? [['host', 'web.default']]).flat();
  const hosts = raw.filter((_, i) => i % 2 === 0 && raw[i]!.toLowerCase() === 'host').length;
  const body = o.body === undefined ? null : Buffer.from(o.body);
  return {
    method: o.method ?? 'GET',
    url: o.url ?? '/',
    rawHeaders: raw,
    minor: 1,
    host: raw[raw.findIndex((n, i) => i % 2 === 0 && n.toLowerCase() === 'host') + 1],
    hosts,
    contentLength: body === null ? -1 : body.length,
    chunked: false,
    hasBody: body !== null,
    socket: new EventEmitter(),
    header: (n: string) => raw[raw.findIndex((x, i) => i % 2 === 0 && x.toLowerCase() === n) + 1],
    pipe(sink: { write(c: Buffer): boolean; end(): void }) {
      if (body !== null) sink.write(body);
      sink.end();
    },
  } as unknown as Req;
}

const exchange = (o?: ReqInit, stats = new RequestStats('')) => new Exchange(fakeReq(o), new FakeRes() as unknown as Res, stats);
const resOf = (ex: Exchange) => ex.res as unknown as FakeRes;

/** A next that records what reached it. */
function recorder(): Handler & { seen: Exchange[] } {
  const seen: Exchange[] = [];
  return Object.assign((ex: Exchange) => void seen.push(ex), { seen });
}

/** A report above a layer that records what reached it. */
function above(): Report & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    response: (_ex, status) => (calls.push(`response ${status}`), false),
    failed: (_ex, _err, code) => (calls.push(`failed ${code}`), false),
    done: () => void calls.push('done'),
  };
}

function reportOf(layer: Layer, up: Report, next: Handler = () => {}): Report {
  return layer.report!(up, next);
}

const info = (instance: string): EndpointInfo => ({
  instance, namespace: 'default', service: 'web', version: 'v1', address: '127.0.0.1', port: 4000 + instance.length, identity: 'spiffe://cluster.local/ns/default/sa/web',
});
const statsFor = () => new RequestStats('');
function target(...instances: string[]): Target {
  const t = new Target('default', 'web', 'cluster.local', statsFor);
  t.update(instances.map(info));
  return t;
}
const rule = (t: Target, extra: Partial<CompiledRule> = {}): CompiledRule => ({
  matches: null, backends: [{ version: 'v1', weight: 1, target: t }], totalWeight: 1, timeoutMs: 0, retry: null, fault: null, ...extra,
});

/** An exchange routed to `t` under `r`, as route would leave it. */
function routed(t: Target, r: CompiledRule | null = null, o?: ReqInit): Exchange {
  const ex = exchange(o);
  ex.router = new ServiceRouter(t);
  if (r) ex.router.rules = [r];
  ex.rule = r;
  ex.target = t;
  ex.stats = t.stats;
  return ex;
}

function assertAnswered(ex: Exchange, status: number, code: ErrorCode): void {
  const res = resOf(ex);
  assert.equal(res.statusCode, status);
  assert.equal(ex.error, code);
  assert.equal(res.header(ERROR_HEADER)?.split(':')[0], code);
  assert.equal(ex.stats.errors[ERROR_INDEX[code]], 1);
}

class FakeUpstream extends EventEmitter {
  reusedSocket = false;
  destroyed: Error | undefined;
  ended = false;
  write(): boolean {
    return true;
  }
  end(): void {
    this.ended = true;
  }
  destroy(err?: Error): void {
    this.destroyed = err;
    this.emit('error', err);
  }
}

describe('the stack', () => {
  it('runs requests through the layers top to bottom, and reports from the bottom up to the top', () => {
    const order: string[] = [];
    const layer = (name: string): Layer => {
      const l: Layer = (next) => (ex) => {
        order.push(`down ${name}`);
        next(ex);
      };
      l.report = (up) => ({ ...up, done(ex) {
        order.push(`up ${name}`);
        up.done(ex);
      } });
      return l;
    };
    const transport = { send: (ex: Exchange) => void transport.report.done(ex), report: TOP };
    stack([layer('a'), layer('b'), layer('c')], transport)(exchange());
    assert.deepEqual(order, ['down a', 'down b', 'down c', 'up c', 'up b', 'up a']);
  });
});

describe('normalize', () => {
  it('names the service and the origin-form path, and hands the request down', () => {
    const next = recorder();
    const ex = exchange({ url: 'http://Web.Default:8080/a?b', headers: [['Host', 'web.default:8080']] });
    normalize(next)(ex);
    assert.equal(next.seen.length, 1);
    assert.equal(ex.host, 'web.default');
    assert.equal(ex.path, '/a?b');
  });

  it('answers bad_request to two Host headers and goes no further', () => {
    const next = recorder();
    const ex = exchange({ headers: [['host', 'a'], ['host', 'b']] });
    normalize(next)(ex);
    assert.equal(next.seen.length, 0);
    assertAnswered(ex, 400, 'bad_request');
    assert.equal(resOf(ex).shouldKeepAlive, false);
  });
});

describe('observe', () => {
  it('starts the trace context and the watch for its direction before handing down', () => {
    const calls: string[] = [];
    const tel = { traceContext: (_ex: Exchange, kind: string) => calls.push(kind), watch: (_ex: Exchange, dir: string) => calls.push(dir) } as unknown as Telemetry;
    const next: Handler = () => void calls.push('next');
    observe(tel, 'inbound')(next)(exchange());
    observe(tel, 'outbound')(next)(exchange());
    assert.deepEqual(calls, ['server', 'inbound', 'next', 'client', 'outbound', 'next']);
  });
});

describe('observe, with the access log on', () => {
  it('logs the stable code of an answer the proxy made itself', () => {
    const lines: string[] = [];
    const tel = new Telemetry({ identity: 'spiffe://cluster.local/ns/default/sa/client', service: 'client', namespace: 'default', deployment: 'client-v1', pod: 'client-v1-x' },
      { accessLog: true, collector: null }, (l) => void lines.push(l));
    const ex = exchange();
    ex.host = 'nosuch.default';
    stack([observe(tel, 'outbound'), route(() => ({ hosts: new Map(), fallback: null }))], () => {})(ex);
    assert.equal(lines.length, 1);
    const entry = JSON.parse(lines[0]!) as { status: number; error?: string };
    assert.equal(entry.status, 502);
    assert.equal(entry.error, 'unknown_service');
  });
});

describe('route', () => {
  it('answers unknown_service for a name not in the mesh', () => {
    const next = recorder();
    const ex = exchange();
    ex.host = 'nosuch.default';
    route(() => ({ hosts: new Map(), fallback: null }))(next)(ex);
    assert.equal(next.seen.length, 0);
    assertAnswered(ex, 502, 'unknown_service');
  });

  it('picks the router, the matching rule and its subset, and counts there from now on', () => {
    const t = target('a');
    const router = new ServiceRouter(t);
    const r = rule(t);
    router.rules = [r];
    const next = recorder();
    const ex = exchange();
    ex.host = 'web.default';
    route(() => ({ hosts: new Map([['web.default', router]]), fallback: null }))(next)(ex);
    assert.equal(ex.router, router);
    assert.equal(ex.rule, r);
    assert.equal(ex.target, t);
    assert.equal(ex.stats, t.stats);
    assert.equal(next.seen.length, 1);
  });
});

describe('fault', () => {
  it('aborts with the rule\'s status and the fault code', () => {
    const t = target('a');
    const next = recorder();
    const ex = routed(t, rule(t, { fault: { delayMs: 0, delayPercent: 0, abortStatus: 418, abortGrpc: 0, abortPercent: 100 } }));
    fault(next)(ex);
    assert.equal(next.seen.length, 0);
    assertAnswered(ex, 418, 'fault');
  });

  it('hands down a request its rule does not touch', () => {
    const next = recorder();
    fault(next)(routed(target('a')));
    assert.equal(next.seen.length, 1);
  });

  it('aborts a gRPC call with the rule\'s gRPC status, counted with its grpc_status; others get its HTTP status', () => {
    const t = target('a');
    const f = { delayMs: 0, delayPercent: 0, abortStatus: 500, abortGrpc: 13, abortPercent: 100 };
    const ex = routed(t, rule(t, { fault: f }), { method: 'POST', headers: [['host', 'web'], ['content-type', 'application/grpc']] });
    fault(recorder())(ex);
    const res = resOf(ex);
    assert.equal(res.statusCode, 500);
    assert.equal(res.header('grpc-status'), '13');
    assert.equal(res.header('content-type'), 'application/grpc');
    assert.equal(res.body, '');
    assert.deepEqual([...ex.stats.grpc!], [[500 * 32 + 13, 1]]);
    assert.equal(ex.stats.statusCounts[500], 0, 'counted once, as a gRPC response');
    const plain = routed(t, rule(t, { fault: f }));
    fault(recorder())(plain);
    assert.equal(resOf(plain).statusCode, 500);
    assert.equal(resOf(plain).header('grpc-status'), undefined);
  });

  it('tells a gRPC caller of any proxy error the gRPC status its HTTP status means', () => {
    const t = target('a');
    const ex = routed(t, rule(t, { fault: { delayMs: 0, delayPercent: 0, abortStatus: 503, abortGrpc: 0, abortPercent: 100 } }), { method: 'POST', headers: [['host', 'web'], ['content-type', 'application/grpc+proto']] });
    fault(recorder())(ex);
    assert.equal(resOf(ex).header('grpc-status'), '14');
    assert.deepEqual([...ex.stats.grpc!], [[503 * 32 + 14, 1]]);
  });
});

describe('retry', () => {
  const fault = (code: string) => Object.assign(new Error(code), { code });

  it('sends a request that never reached a server again, through its next, once the try is over', () => {
    const next = recorder();
    const up = above();
    const ex = routed(target('a'));
    retry(next)(ex);
    const r = reportOf(retry, up, next);
    for (let i = 1; i < MAX_UNSENT_ATTEMPTS; i++) {
      assert.equal(r.failed(ex, fault('ECONNREFUSED'), 'connect', false), true);
      assert.equal(next.seen.length, i, 'not before the try is over');
      r.done(ex);
      assert.equal(next.seen.length, i + 1);
      assert.equal(ex.attempts, i + 1);
    }
    // The last try's failure goes up, and so does its end.
    assert.equal(r.failed(ex, fault('ECONNREFUSED'), 'connect', false), false);
    r.done(ex);
    assert.deepEqual(up.calls, ['failed connect', 'done']);
  });

  it('does not send again what may have reached a server, without a rule', () => {
    const up = above();
    const ex = routed(target('a'));
    const next = recorder();
    retry(next)(ex);
    const r = reportOf(retry, up, next);
    assert.equal(r.failed(ex, fault('ECONNRESET'), 'upstream', false), false);
    assert.equal(r.response(ex, 503), false);
    assert.deepEqual(up.calls, ['failed upstream', 'response 503']);
  });

  it('retries a 5xx as the rule asks, for an idempotent request, counting each retry', () => {
    const t = target('a');
    const r5 = rule(t, { retry: { attempts: 2, on5xx: true, onConnect: false, grpcOn: 0 } });
    const next = recorder();
    const ex = routed(t, r5);
    retry(next)(ex);
    const r = reportOf(retry, above(), next);
    assert.equal(r.response(ex, 503), true);
    r.done(ex);
    assert.equal(r.response(ex, 503), true);
    r.done(ex);
    assert.equal(r.response(ex, 503), false, 'two retries, then the 503 goes to the client');
    assert.equal(t.stats.extra.get('outbound_http_retries_total'), 2);

    const post = routed(t, r5, { method: 'POST' });
    retry(recorder())(post);
    assert.equal(r.response(post, 503), false);
  });

  it('retries a gRPC call answered trailers-only with a status the rule names, once its body was kept whole', () => {
    const t = target('a');
    const unavailable = rule(t, { retry: { attempts: 2, on5xx: false, onConnect: false, grpcOn: 1 << 14 } });
    const grpcCall = { method: 'POST', headers: [['host', 'web'], ['content-type', 'application/grpc']] as [string, string][], body: 'call' };
    const next = recorder();
    const ex = routed(t, unavailable, grpcCall);
    ex.replayable = false;
    retry(next)(ex);
    assert.ok(ex.kept !== null, 'the body is copied as it goes up, not read first');
    const upstream = new FakeUpstream();
    ex.kept.pipe(ex.req, upstream as never);
    const r = reportOf(retry, above(), next);
    ex.grpcStatus = 13;
    assert.equal(r.response(ex, 200), false, 'INTERNAL is not named');
    ex.grpcStatus = 14;
    assert.equal(r.response(ex, 200), true);
    assert.equal(ex.body?.toString(), 'call', 'the kept body is what the retry sends');
    r.done(ex);
    assert.equal(next.seen.length, 2);
    assert.equal(t.stats.extra.get('outbound_http_retries_total'), 1);

    // A refused stream reached no server: a call whose body was kept whole goes again whatever its rule names.
    const refused = routed(t, unavailable, grpcCall);
    refused.replayable = false;
    const again = recorder();
    retry(again)(refused);
    refused.kept!.pipe(refused.req, new FakeUpstream() as never);
    const rr = reportOf(retry, above(), again);
    assert.equal(rr.failed(refused, Object.assign(new Error('refused'), { code: 'ERR' }), 'refused', false), true);
    rr.done(refused);
    assert.equal(again.seen.length, 2);
    assert.equal(refused.body?.toString(), 'call');

    // A body still streaming (or past the bound) is not kept whole: the status goes to the client.
    const streaming = routed(t, unavailable, grpcCall);
    streaming.replayable = false;
    retry(recorder())(streaming);
    const open = { pipe: (sink: { write(c: Buffer): boolean }) => void sink.write(Buffer.from('part')) };
    streaming.kept!.pipe(open as unknown as Req, new FakeUpstream() as never);
    streaming.grpcStatus = 14;
    assert.equal(r.response(streaming, 200), false);
  });

  it('reads a small body first when the rule retries, so it can be sent again', () => {
    const t = target('a');
    const next = recorder();
    const ex = routed(t, rule(t, { retry: { attempts: 1, on5xx: true, onConnect: true, grpcOn: 0 } }), { method: 'PUT', body: 'hello' });
    ex.replayable = false;
    retry(next)(ex);
    assert.equal(next.seen.length, 1);
    assert.equal(ex.body?.toString(), 'hello');
  });
});

describe('timeout', () => {
  it('cuts a try still running when the rule\'s time passes, and answers timeout (504), never to be retried', async () => {
    const t = target('a');
    const ex = routed(t, rule(t, { timeoutMs: 20 }));
    const upstream = new FakeUpstream();
    const up = above();
    const r = reportOf(timeout, up);
    upstream.on('error', (err: MeshFault) => assert.equal(r.failed(ex, err as unknown as NodeJS.ErrnoException, err.kind, false), true));
    timeout((e) => void (e.upstream = upstream as never))(ex);
    assert.ok(ex.timer !== null);
    const deadline = Date.now() + 2000;
    while (ex.error === null && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
    assert.equal((upstream.destroyed as MeshFault).kind, 'timeout');
    assertAnswered(ex, 504, 'timeout');
    assert.equal(t.stats.extra.get('outbound_http_timeouts_total'), 1);
    r.done(ex);
    assert.deepEqual(up.calls, ['done'], 'the failure stops here');
  });

  it('arms nothing when no try went out, and disarms when a try is over', () => {
    const t = target('a');
    const ex = routed(t, rule(t, { timeoutMs: 1000 }));
    timeout(() => {})(ex);
    assert.equal(ex.timer, null);
    timeout((e) => void (e.upstream = new FakeUpstream() as never))(ex);
    assert.ok(ex.timer !== null);
    reportOf(timeout, TOP).done(ex);
    assert.equal(ex.timer, null);
  });
});

describe('timeout, for a gRPC call', () => {
  it('reads grpc-timeout in every unit, and refuses what is not one', () => {
    const cases: [string, number][] = [
      ['1H', 3_600_000], ['2M', 120_000], ['3S', 3000], ['250m', 250], ['1500u', 1.5], ['2000000n', 2], ['99999999m', 99_999_999],
      ['', -1], ['m', -1], ['10', -1], ['10s', -1], ['-5m', -1], ['1.5S', -1], ['123456789m', -1], [' 5m', -1],
    ];
    for (const [v, ms] of cases) assert.equal(grpcTimeoutMs(v), ms, v);
    assert.equal(formatGrpcTimeout(1234.9), '1234m');
    assert.equal(formatGrpcTimeout(0.2), '1m');
    assert.equal(formatGrpcTimeout(3 * 86_400_000), '259200S');
  });

  it('cuts the try at the nearer of the rule\'s timeout and the call\'s deadline, and passes the time left on', () => {
    const t = target('a');
    const ex = routed(t, rule(t, { timeoutMs: 10_000 }));
    ex.headers = ['content-type', 'application/grpc', 'grpc-timeout', '2S'];
    timeout((e) => void (e.upstream = new FakeUpstream() as never))(ex);
    const left = Number(ex.headers[3]!.slice(0, -1));
    assert.ok(ex.headers[3]!.endsWith('m') && left > 1000 && left <= 2000, ex.headers[3]);
    reportOf(timeout, TOP).done(ex);

    const shorter = routed(t, rule(t, { timeoutMs: 300 }));
    shorter.headers = ['grpc-timeout', '1M'];
    timeout((e) => void (e.upstream = new FakeUpstream() as never))(shorter);
    assert.equal(shorter.headers[1], '300m', 'the server sees the route\'s shorter deadline');
    reportOf(timeout, TOP).done(shorter);

    const bad = routed(t, rule(t, { timeoutMs: 0 }));
    bad.headers = ['grpc-timeout', 'soon'];
    timeout((e) => void (e.upstream = new FakeUpstream() as never))(bad);
    assert.equal(bad.headers[1], 'soon', 'a value that is not a grpc-timeout is left to the server');
    assert.equal(bad.timer, null);
  });

  it('answers DEADLINE_EXCEEDED (timeout) without a try once the deadline has passed', () => {
    const t = target('a');
    const next = recorder();
    const ex = routed(t, rule(t), { method: 'POST', headers: [['host', 'web'], ['content-type', 'application/grpc']] });
    ex.headers = ['grpc-timeout', '1n'];
    timeout(next)(ex);
    assert.equal(next.seen.length, 0);
    assertAnswered(ex, 504, 'timeout');
    assert.equal(resOf(ex).header('grpc-status'), '4');
  });
});

describe('balance', () => {
  it('answers no_endpoints when a service has none, overloaded when all are at their limit', () => {
    const ex = routed(target());
    balance(recorder())(ex);
    assertAnswered(ex, 503, 'no_endpoints');
    const t = target('a');
    t.endpoints[0]!.inflight = t.breaker.maxInflight;
    const busy = routed(t);
    balance(recorder())(busy);
    assertAnswered(busy, 503, 'overloaded');
  });

  it('counts the try in flight on its endpoint until it is over', () => {
    const t = target('a');
    const ex = routed(t);
    const next = recorder();
    balance(next)(ex);
    assert.equal(ex.endpoint, t.endpoints[0]);
    assert.equal(ex.stats, t.endpoints[0]!.stats);
    assert.equal(ex.endpoint!.inflight, 1);
    const up = above();
    reportOf(balance, up).done(ex);
    assert.equal(ex.endpoint!.inflight, 0);
    assert.deepEqual(up.calls, ['done']);
  });

  it('ejects an endpoint at once on a connect failure, but not on a refused stream or a reset', () => {
    const r = reportOf(balance, TOP);
    const err = new Error('x');
    for (const [code, ejected] of [['connect', true], ['peer_identity', true], ['refused', false], ['upstream', false]] as const) {
      const t = target('a');
      const ex = routed(t);
      balance(() => {})(ex);
      r.failed(ex, err, code, false);
      assert.equal(ex.endpoint!.ejectedUntil > Date.now(), ejected, code);
    }
  });

  it('ejects after consecutive 5xx as they accrue', () => {
    const t = target('a');
    const r = reportOf(balance, TOP);
    for (let i = 0; i < t.breaker.consecutiveFailures; i++) {
      const ex = routed(t);
      balance(() => {})(ex);
      r.response(ex, 500);
      r.done(ex);
    }
    assert.ok(t.endpoints[0]!.ejectedUntil > Date.now());
    assert.equal(t.stats.extra.get('outbound_endpoint_ejections_total'), 1);
  });
});

describe('the transports', () => {
  it('forward reports a failure with its code, and answers it with that code when no layer takes it', () => {
    const upstream = new FakeUpstream();
    const transport = { sessions: { request: () => upstream }, secureContext: {} } as unknown as MtlsTransport;
    const fwd = mtlsForward(transport);
    const up = above();
    fwd.report = up;
    const t = target('a');
    const ex = routed(t);
    ex.endpoint = t.endpoints[0]!;
    fwd.send(ex);
    assert.equal(ex.upstream, upstream);
    assert.ok(upstream.ended, 'a request without a body is sent whole');
    upstream.emit('error', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    assert.deepEqual(up.calls, ['failed connect', 'done']);
    assert.equal(ex.upstream, null);
    assertAnswered(ex, 502, 'connect');
  });

  it('to-app relays the app\'s response and reports it', () => {
    const upstream = new FakeUpstream();
    const app = toApp({ request: () => upstream } as unknown as Pool);
    const up = above();
    app.report = up;
    const ex = exchange();
    ex.appPort = 8080;
    app.send(ex);
    const body = new EventEmitter();
    upstream.emit('response', Object.assign(body, { statusCode: 200, statusMessage: 'OK', rawHeaders: ['content-length', '2'], pause() {}, resume() {} }));
    body.emit('data', Buffer.from('ok'));
    assert.equal(resOf(ex).statusCode, 200);
    assert.equal(resOf(ex).body, 'ok');
    assert.deepEqual(up.calls, ['response 200', 'done']);
  });
});

describe('host-check', () => {
  it('carries the verified identity on and sends a Service port to the app port it targets', () => {
    const next = recorder();
    const layer = hostCheck({ appPort: 8080, hostPorts: new Set([8080, 9090]), servicePorts: () => new Map([[80, 9090]]) });
    const ex = exchange({ headers: [['host', 'shop'], ['mesh-client-id', 'forged']] });
    ex.peer = 'spiffe://cluster.local/ns/default/sa/web';
    layer(next)(ex);
    assert.equal(ex.appPort, 9090);
    assert.deepEqual(ex.headers.slice(-2), ['mesh-client-id', ex.peer]);
    assert.equal(ex.headers.filter((h) => h === 'forged').length, 0);
  });
});

describe('authorize', () => {
  const policy = compilePolicy({ policies: [newPolicy('default', 'deny', [{ from: 'web', to: 'shop' }])] });
  const layer = authorize({ namespace: 'default', service: 'shop', policy: () => policy });

  it('hands down an allowed request and counts the decision', () => {
    const next = recorder();
    const ex = exchange();
    ex.peer = 'spiffe://cluster.local/ns/default/sa/web';
    layer(next)(ex);
    assert.equal(next.seen.length, 1);
    assert.equal(ex.stats.authzAllow, 1);
    const [[rule, c]] = [...ex.stats.authz!];
    assert.deepEqual([rule, c!.allow, c!.deny], ['rule 1 of policy default/default', 1, 0]);
    // The rule counts the response of the request it let in (mesh authz's measured latency).
    ex.observe(200);
    assert.deepEqual([c!.ok, c!.failed, c!.buckets.reduce((a, b) => a + b, 0)], [1, 0, 1]);
  });

  it('answers denied (403) to a peer the policy does not allow, and to a client without identity', () => {
    for (const peer of ['spiffe://cluster.local/ns/default/sa/other', '']) {
      const next = recorder();
      const ex = exchange();
      ex.peer = peer;
      layer(next)(ex);
      assert.equal(next.seen.length, 0);
      assertAnswered(ex, 403, 'denied');
      assert.equal(ex.stats.authzDeny, 1);
      assert.deepEqual([...ex.stats.authz!].map(([rule, c]) => [rule, c.allow, c.deny, c.ok + c.failed]), [['default deny', 0, 1, 0]]);
    }
  });
});

describe('admit', () => {
  it('runs an exchange below once the gate admits it, and frees its slot when its try is over', () => {
    const gate = new Gate(1, 1, 'app connections');
    const layer = admit(gate);
    const next = recorder();
    const handler = layer(next);
    const r = reportOf(layer, TOP);
    const [a, b] = [exchange(), exchange()];
    handler(a);
    handler(b);
    assert.deepEqual(next.seen, [a]);
    r.done(a);
    assert.deepEqual(next.seen, [a, b]);
  });
});

describe('upgrades', () => {
  it('refuse through the same response writer: the code in the error header, then the connection closes', () => {
    const written: string[] = [];
    let ended = false;
    const socket = Object.assign(new EventEmitter(), {
      destroyed: false,
      write: (s: string) => void written.push(s),
      end: (b?: Buffer) => {
        if (b) written.push(b.toString());
        ended = true;
      },
    }) as unknown as Socket;
    const ex = upgradeExchange(fakeReq({ headers: [['host', 'a'], ['host', 'b']] }), socket, Buffer.alloc(0), new RequestStats(''));
    assert.ok(ex.res instanceof UpgradeRes);
    normalize(recorder())(ex);
    assert.match(written[0]!, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(written[0]!, /\r\nmesh-proxy-error: bad_request: /);
    assert.match(written[0]!, /\r\nconnection: close\r\n\r\n$/);
    assert.ok(ended);
  });
});

describe('reconnect (the connection stack)', () => {
  interface C { attempts: number; again: boolean; gone: boolean; failedWith: ErrorCode | null }
  /** A transport whose tries fail with `codes` in turn, then open. */
  const run = (codes: ErrorCode[], gone = false) => {
    const c: C = { attempts: 0, again: false, gone, failedWith: null };
    const transport = {
      send(x: C) {
        const code = codes.shift();
        if (code === undefined) transport.report.response(x, 200);
        else if (!transport.report.failed(x, new MeshFault(code, code) as Error, code, false)) x.failedWith = code;
        transport.report.done(x);
      },
      report: TOP as Report<C>,
    };
    stack<C>([reconnect<C>()], transport)(c);
    return c;
  };

  it('tries again what never reached a peer, up to the unsent limit', () => {
    assert.deepEqual(run(['connect', 'peer_identity']), { attempts: 3, again: false, gone: false, failedWith: null });
    assert.equal(run(['connect', 'refused', 'connect']).failedWith, 'connect');
    assert.equal(run(['connect', 'refused', 'connect']).attempts, MAX_UNSENT_ATTEMPTS);
  });

  it('does not try again what may have reached the peer, nor for a client that went away', () => {
    assert.deepEqual(run(['upstream']), { attempts: 1, again: false, gone: false, failedWith: 'upstream' });
    assert.equal(run(['connect'], true).attempts, 1);
  });
});
