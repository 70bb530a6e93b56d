// The proxy's decision-making parts alone, without sockets: budget, balancer, breaker, routing.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Req } from '../src/proxy/wire/h1-server.js';
import { RetryBudget, ServiceRouter, pickBackend, type CompiledRule } from '../src/proxy/routing.js';
import { Target, DEFAULT_BREAKER } from '../src/proxy/balancer.js';
import { MetricsRegistry, LATENCY_BUCKETS_MS } from '../src/proxy/metrics.js';
import type { EndpointInfo } from '../src/model/snapshot.js';

const metrics = new MetricsRegistry({ namespace: 'default', deployment: 'client-v1', pod: 'client-v1-x' });
const statsFor = (ns: string, svc: string, ep?: EndpointInfo) => metrics.requests({ dst_namespace: ns, dst_service: svc, dst_pod: ep?.instance ?? '' });
const ep = (instance: string, version = 'v1'): EndpointInfo => ({
  instance, namespace: 'default', service: 'web', version, address: '127.0.0.1', port: 1000 + instance.length, identity: 'spiffe://cluster.local/ns/default/sa/web',
});
function target(...eps: EndpointInfo[]): Target {
  const t = new Target('default', 'web', 'cluster.local', statsFor);
  t.update(eps);
  return t;
}

describe('the retry budget', () => {
  it('allows the floor per second when there is no traffic to take a share of', () => {
    const b = new RetryBudget(0.2, 10);
    const now = 1_000_000;
    let n = 0;
    while (b.withdraw(now) && n < 1000) n++;
    assert.equal(n, 100, 'ten seconds of a floor of 10 per second');
  });

  it('allows retries of at most 20% of requests on top of the floor', () => {
    const b = new RetryBudget(0.2, 0);
    const now = 2_000_000;
    for (let i = 0; i < 1000; i++) b.deposit(now);
    let n = 0;
    while (b.withdraw(now) && n < 1000) n++;
    assert.equal(n, 200);
  });

  it('forgets requests and retries older than its window', () => {
    const b = new RetryBudget(0.2, 0);
    for (let i = 0; i < 100; i++) b.deposit(3_000_000);
    assert.ok(b.withdraw(3_000_000));
    assert.equal(b.withdraw(3_000_000 + 11_000), false);
  });
});

describe('the balancer', () => {
  it('sends more traffic to a fast endpoint than to a slow one', () => {
    const t = target(ep('fast'), ep('slow'));
    const [fast, slow] = t.endpoints;
    const now = Date.now();
    fast!.succeeded(1, now);
    slow!.succeeded(50, now);
    const counts = { fast: 0, slow: 0 };
    for (let i = 0; i < 1000; i++) {
      const e = t.pick()!;
      counts[e.info.instance as 'fast' | 'slow']++;
      e.inflight++;
      if (i % 10 === 9) for (const x of t.endpoints) x.inflight = 0;
    }
    assert.ok(counts.fast > counts.slow * 3, JSON.stringify(counts));
  });

  it('ejects an endpoint after consecutive failures, and probes it with one request when the back-off ends', () => {
    const t = target(ep('a'), ep('b'));
    const a = t.endpoints[0]!;
    const now = Date.now();
    for (let i = 0; i < DEFAULT_BREAKER.consecutiveFailures - 1; i++) assert.equal(a.failed(now, false), false);
    assert.equal(a.failed(now, false), true);
    assert.ok(!a.available(now));
    for (let i = 0; i < 50; i++) assert.equal(t.pick()!.info.instance, 'b');
    const later = a.ejectedUntil + 1;
    assert.ok(a.available(later));
    a.inflight = 1;
    assert.ok(!a.available(later), 'only one probe at a time');
    a.inflight = 0;
    a.succeeded(1, later);
    assert.equal(a.ejections, 0);
  });

  it('backs off longer each time an endpoint is ejected again, up to the maximum', () => {
    const a = target(ep('a')).endpoints[0]!;
    let now = 10_000_000;
    const lengths: number[] = [];
    for (let k = 0; k < 10; k++) {
      a.failed(now, true);
      lengths.push(a.ejectedUntil - now);
      now = a.ejectedUntil + 1;
    }
    assert.ok(lengths[0]! >= 500 && lengths[0]! <= 1000, String(lengths[0]));
    assert.ok(lengths[3]! > lengths[0]!);
    assert.ok(lengths.every((l) => l <= DEFAULT_BREAKER.maxEjectMs));
  });

  it('sheds load with no endpoint when every endpoint is at its concurrency limit', () => {
    const t = target(ep('a'));
    t.endpoints[0]!.inflight = DEFAULT_BREAKER.maxInflight;
    assert.equal(t.pick(), null);
    assert.equal(t.unavailable().code, 'overloaded');
  });
});

describe('routing', () => {
  const rule = (weights: [string, number][], extra: Partial<CompiledRule> = {}): CompiledRule => {
    const backends = weights.map(([version, weight]) => ({ version, weight, target: target(ep(`${version}-1`, version)) }));
    return { matches: null, backends, totalWeight: backends.reduce((a, b) => a + b.weight, 0), timeoutMs: 0, retry: null, fault: null, ...extra };
  };

  it('splits by weight within two points over 10 000 picks', () => {
    const r = rule([['v1', 80], ['v2', 20]]);
    let v1 = 0;
    for (let i = 0; i < 10_000; i++) if (pickBackend(r) === r.backends[0]!.target) v1++;
    assert.ok(Math.abs(v1 / 100 - 80) < 2, `${v1 / 100}%`);
  });

  it('takes the first rule whose match fits, else the default', () => {
    const router = new ServiceRouter(target(ep('a')));
    const jason = rule([['v3', 1]], { matches: [{ headers: [{ name: 'end-user', exact: 'jason' }] }] });
    const api = rule([['v2', 1]], { matches: [{ headers: [], pathPrefix: '/api', method: 'GET' }] });
    const dflt = rule([['v1', 1]]);
    router.rules = [jason, api, dflt];
    const req = (headers: Record<string, string>, method = 'GET') => ({ header: (n: string) => headers[n], method }) as unknown as Req;
    assert.equal(router.match(req({ 'end-user': 'jason' }), '/'), jason);
    assert.equal(router.match(req({ 'end-user': 'json' }), '/'), dflt);
    assert.equal(router.match(req({}), '/api/x'), api);
    assert.equal(router.match(req({}, 'POST'), '/api/x'), dflt);
  });
});

describe('metrics', () => {
  it('renders cumulative histogram buckets and status classes', () => {
    const m = new MetricsRegistry({ namespace: 'default', deployment: 'web-v1', pod: 'p' });
    const s = m.requests({ direction: 'inbound' });
    s.observe(200, 0.7);
    s.observe(200, 3);
    s.observe(503, 12);
    const text = m.render();
    assert.match(text, /request_total\{namespace="default",deployment="web-v1",pod="p",direction="inbound"\} 3/);
    assert.match(text, /response_total\{[^}]*classification="failure",status_code="503"\} 1/);
    assert.match(text, /response_latency_ms_bucket\{[^}]*le="1"\} 1\n/);
    assert.match(text, /response_latency_ms_bucket\{[^}]*le="5"\} 2\n/);
    assert.match(text, /response_latency_ms_bucket\{[^}]*le="\+Inf"\} 3\n/);
    assert.equal(LATENCY_BUCKETS_MS.length, new Set(LATENCY_BUCKETS_MS).size);
  });
});
