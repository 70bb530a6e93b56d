// Authorization enforced by the inbound proxies: the sample locked down with default deny still
// works through its allow rules, and a rogue workload gets 403.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestMesh, request, waitFor, type WorkloadInfo } from './support/mesh.js';
import { proxyError } from './support/http.js';

describe('authorization policy in the proxies', () => {
  const m = new TestMesh();
  let ingress = '';
  let rogue: WorkloadInfo;

  const policy = async (...args: string[]) => {
    const r = await m.cli(['policy', ...args]);
    assert.equal(r.code, 0, `mesh policy ${args.join(' ')}: ${r.stderr}`);
  };

  before(async () => {
    const r = await m.cli(['demo', '--ingress-port', '0', '--no-traffic'], { timeoutMs: 90_000 });
    assert.equal(r.code, 0, r.stderr);
    ingress = /http:\/\/(127\.0\.0\.1:\d+)\/productpage/.exec(r.stdout)![1]!;
    rogue = await m.run('rogue');
  });
  after(() => m.cleanup());

  it('keeps the product page working under default deny with the sample\'s allow rules', async () => {
    await policy('default', 'deny');
    for (const [from, to] of [['productpage', 'details'], ['productpage', 'reviews'], ['reviews', 'ratings'], ['ingress', 'productpage']]) {
      await policy('allow', '--from', from!, '--to', to!);
    }
    const started = Date.now();
    await waitFor('the locked-down page to show ratings', async () => {
      const r = await request(ingress, { path: '/productpage' });
      return r.status === 200 && /reviews-v[23]/.test(r.body) && !/unavailable/i.test(r.body);
    }, 20_000, 100);
    assert.ok(Date.now() - started < 20_000);
  });

  it('answers 403 with a reason to a workload no rule allows, and counts it', async () => {
    const r = await waitFor('the deny to reach the ratings sidecar', async () => {
      const x = await request(rogue.outbound, { path: '/ratings/0', headers: { host: 'ratings' } });
      return x.status === 403 ? x : undefined;
    }, 5_000, 100);
    assert.equal(proxyError(r!.headers), 'denied');
    const ratings = JSON.parse((await m.cli(['workloads', '-o', 'json'])).stdout) as { service: string; admin: string }[];
    const admin = ratings.find((w) => w.service === 'ratings')!.admin;
    const metrics = (await request(admin, { path: '/metrics' })).body;
    assert.match(metrics, /inbound_http_authz_deny_total\{[^}]*client_id="spiffe:\/\/cluster.local\/ns\/default\/sa\/rogue"[^}]*,rule="default deny"\} [1-9]/);
    assert.match(metrics, /inbound_http_errors_total\{[^}]*client_id="spiffe:\/\/cluster.local\/ns\/default\/sa\/rogue"[^}]*,error="denied"\} [1-9]/);
    assert.match(metrics, /inbound_http_authz_allow_total\{[^}]*client_id="spiffe:\/\/cluster.local\/ns\/default\/sa\/reviews"[^}]*,rule="rule \d+ of policy default\/\S+"\}/);
    assert.equal((await request(admin, { path: '/ready' })).status, 200, 'the admin endpoints stay reachable');
  });

  it('takes a policy change within 2 s, and a path rule cannot be bypassed', async () => {
    await policy('allow', '--from', 'rogue', '--to', 'details', '--path-prefix', '/details');
    const t0 = Date.now();
    await waitFor('the new rule', async () => (await request(rogue.outbound, { path: '/details/0', headers: { host: 'details' } })).status === 200, 2_000, 50);
    assert.ok(Date.now() - t0 <= 2_000);
    for (const path of ['/health', '/details/../health', '/details/%2e%2e/health', '//health', '/DETAILS/0', '/detailsx']) {
      const r = await request(rogue.outbound, { path, headers: { host: 'details' } });
      assert.equal(r.status, 403, `${path} answered ${r.status}`);
    }
  });
});
