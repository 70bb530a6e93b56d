// mesh check as data: the local categories over fake views with real certificates (valid, expiring
// soon, expired), the runner's retry and fatal rules, and the rendering against golden files.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { createIssuer, createTrustAnchor, DAY, generateKey, Issuer, type CertAndKey } from '../src/identity/ca.js';
import { certInfo } from '../src/identity/keys.js';
import { LOCAL_CATEGORIES, LocalCheckContext, type MeshView, type ProxyView } from '../src/check/local.js';
import { PRE_CATEGORIES, type PreView } from '../src/check/pre.js';
import { runChecks, type Category, type CheckReport } from '../src/check/runner.js';
import { renderJson, renderText } from '../src/ui/check.js';
import type { ProxyHealth } from '../src/platform/local/probe.js';
import { golden } from './support/golden.js';

/** Dates in messages differ per run: golden files hold <time> instead. */
const masked = (s: string) => s.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<time>');

interface Fixture {
  anchor: CertAndKey;
  issuer: CertAndKey;
  leafExpiry: number;
}

function view(f: Fixture, over: Partial<MeshView> & { health?: Record<string, ProxyHealth>; proxyList?: ProxyView[] } = {}): MeshView {
  const now = Date.now();
  const proxyList = over.proxyList ?? [
    { instance: 'web-v1-abcde', namespace: 'default', service: 'web', admin: '127.0.0.1:1', configVersion: 'k1.7', lastSeen: new Date(now - 1000).toISOString() },
    { instance: 'client-v1-fghij', namespace: 'default', service: 'client', admin: '127.0.0.1:2', configVersion: 'k1.7', lastSeen: new Date(now - 500).toISOString() },
  ];
  const health = over.health ?? {};
  return {
    now: () => now,
    cliVersion: '0.1.0',
    where: '~/.mesh',
    installed: () => true,
    controlProcess: () => ({ pid: 4242, alive: true, log: '~/.mesh/logs/control.log' }),
    serverVersion: async () => '0.1.0',
    proxies: async () => proxyList,
    snapshotVersion: async () => 'k1.7',
    identityFiles: () => ({ anchorsPem: f.anchor.certPem, issuerCertPem: f.issuer.certPem, issuerKeyPem: f.issuer.keyPem }),
    servedIdentity: async () => ({ trustAnchors: f.anchor.certPem, issuer: f.issuer.certPem, certLifetimeMs: DAY }),
    rotation: () => undefined,
    runningWorkloads: () => proxyList.map((p) => p.instance),
    probe: async (admin) => health[admin ?? ''] ?? { ready: true, certNotAfter: f.leafExpiry },
    ...over,
  };
}

const run = (v: MeshView, waitMs = 0) => runChecks(LOCAL_CATEGORIES, new LocalCheckContext(v), { waitMs, retryEveryMs: 20 });
const find = (r: CheckReport, description: RegExp) => r.categories.flatMap((c) => c.checks).find((c) => description.test(c.description))!;

describe('mesh check on the local platform', () => {
  let good: Fixture;
  let soon: Fixture;
  let expiredIssuer: Fixture;
  let otherAnchor: CertAndKey;
  let expiredLeafNotAfter = 0;

  before(async () => {
    const anchor = await createTrustAnchor('cluster.local');
    good = { anchor, issuer: await createIssuer('cluster.local', anchor), leafExpiry: Date.now() + 20 * 3600_000 };
    // Expiring soon: an anchor with 30 days left and an issuer with 10.
    const soonAnchor = await createTrustAnchor('cluster.local', 30 * DAY);
    soon = { anchor: soonAnchor, issuer: await createIssuer('cluster.local', soonAnchor, 10 * DAY), leafExpiry: good.leafExpiry };
    // Expired for real: valid for ten minutes, an hour ago.
    expiredIssuer = { anchor, issuer: await createIssuer('cluster.local', anchor, 600_000, new Date(Date.now() - 3600_000)), leafExpiry: good.leafExpiry };
    otherAnchor = await createTrustAnchor('cluster.local');
    // An expired workload certificate, issued an hour ago for ten minutes.
    const kp = await generateKey();
    const leaf = new Issuer(good.issuer).issueLeaf({ uri: 'spiffe://cluster.local/ns/default/sa/web', publicKeyPem: kp.publicKeyPem, lifetimeMs: 600_000, notBefore: new Date(Date.now() - 3600_000) });
    expiredLeafNotAfter = certInfo(leaf).notAfter.getTime();
  });

  it('passes a healthy mesh (golden)', async () => {
    const r = await run(view(good));
    assert.equal(r.success, true);
    assert.ok(r.categories.every((c) => c.checks.every((x) => x.result === 'success')));
    golden('check-healthy.txt', renderText(r));
    golden('check-healthy.json', renderJson(r));
  });

  it('warns, and still succeeds, when the anchor and issuer expire within 60 days (golden)', async () => {
    const r = await run(view(soon));
    assert.equal(r.success, true);
    assert.equal(find(r, /trust anchors are valid for at least 60 days/).result, 'warning');
    assert.match(find(r, /trust anchors are valid for at least 60 days/).error!, /expires on .* in (29|30) days/);
    assert.equal(find(r, /issuer certificate is valid for at least 60 days/).result, 'warning');
    golden('check-expiring.txt', masked(renderText(r)));
  });

  it('fails when the issuer has expired, however soon the rest is fine', async () => {
    const r = await run(view(expiredIssuer));
    assert.equal(r.success, false);
    assert.equal(find(r, /issuer certificate is within its validity period/).result, 'error');
    assert.match(find(r, /issuer certificate is within its validity period/).error!, /expired on/);
  });

  it('fails when a proxy certificate has expired, and names the proxy and the others\' problems (golden)', async () => {
    const v = view(good, {
      health: {
        '127.0.0.1:1': { ready: true, certNotAfter: expiredLeafNotAfter },
        '127.0.0.1:2': { ready: false, certNotAfter: good.leafExpiry },
      },
      snapshotVersion: async () => 'k1.9',
    });
    const r = await run(v);
    assert.equal(r.success, false);
    const certs = find(r, /valid certificates/);
    assert.equal(certs.result, 'error');
    assert.match(certs.error!, /^web-v1-abcde \(default\/web\): its certificate expired on /);
    assert.equal(find(r, /are ready/).result, 'error');
    assert.equal(find(r, /current config/).result, 'error');
    golden('check-data-plane-failing.txt', masked(renderText(r)));
    golden('check-data-plane-failing.json', masked(renderJson(r)));
  });

  it('warns when a proxy is past its renewal point', async () => {
    const v = view(good, { health: { '127.0.0.1:1': { ready: true, certNotAfter: Date.now() + 0.05 * DAY } } });
    const r = await run(v);
    assert.equal(r.success, true);
    assert.equal(find(r, /renew their certificates/).result, 'warning');
  });

  it('fails an issuer that no anchor in the bundle signed', async () => {
    const r = await run(view({ ...good, anchor: otherAnchor }));
    assert.equal(find(r, /issued by the trust anchor/).result, 'error');
    assert.equal(find(r, /signs with the current issuer/).result, 'success');
  });

  it('fails a control plane that still signs with the old issuer', async () => {
    const r = await run(view(good, { servedIdentity: async () => ({ trustAnchors: good.anchor.certPem, issuer: soon.issuer.certPem, certLifetimeMs: DAY }) }));
    assert.match(find(r, /signs with the current issuer/).error!, /another issuer.*\n.*mesh identity reload/);
  });

  it('reports a stale heartbeat and a workload that never registered', async () => {
    const stale: ProxyView = { instance: 'web-v1-abcde', namespace: 'default', service: 'web', admin: '127.0.0.1:1', configVersion: 'k1.7', lastSeen: new Date(Date.now() - 30_000).toISOString() };
    const r = await run(view(good, { proxyList: [stale], runningWorkloads: () => ['web-v1-abcde', 'db-v1-zzzzz'] }));
    assert.equal(find(r, /connected/).error, 'db-v1-zzzzz: runs but is not registered with the control plane\nweb-v1-abcde (default/web): last heartbeat 30 s ago');
  });

  it('stops at a fatal failure, skipping the rest (golden)', async () => {
    const r = await run(view(good, { serverVersion: async () => { throw new Error('control plane at 127.0.0.1:40000 is not reachable (ECONNREFUSED)'); } }));
    assert.equal(r.success, false);
    assert.deepEqual(r.categories.map((c) => c.categoryName), ['mesh-control-plane']);
    golden('check-control-plane-down.txt', renderText(r));
  });

  it('retries a retryable check until it passes within the wait', async () => {
    let calls = 0;
    const v = view(good, { serverVersion: async () => { if (++calls < 3) throw new Error('starting'); return '0.1.0'; } });
    const r = await run(v, 2000);
    assert.equal(r.success, true);
    assert.ok(calls >= 3);
  });

  it('does not retry a check that cannot fix itself', async () => {
    let calls = 0;
    const cats: Category<null>[] = [{ name: 'c', checkers: [{ description: 'd', hint: 'h', check: () => { calls++; throw new Error('no'); } }] }];
    const t0 = Date.now();
    const r = await runChecks(cats, null, { waitMs: 5000, retryEveryMs: 10 });
    assert.equal(r.success, false);
    assert.equal(calls, 1);
    assert.ok(Date.now() - t0 < 1000);
  });
});

describe('mesh check --pre', () => {
  const pre = (over: Partial<PreView> = {}): PreView => ({
    nodeVersion: 'v20.19.0',
    tls13: () => true,
    where: '~/.mesh',
    stateDirProblem: () => undefined,
    installed: () => false,
    controlRunning: () => false,
    controlPort: () => undefined,
    portInUse: async () => false,
    ...over,
  });

  it('passes on a machine ready for the mesh', async () => {
    const r = await runChecks(PRE_CATEGORIES, pre());
    assert.equal(r.success, true);
  });

  it('fails an old Node, an unwritable state dir and a taken control port (golden)', async () => {
    const r = await runChecks(PRE_CATEGORIES, pre({
      nodeVersion: 'v18.20.4',
      stateDirProblem: () => '/srv is not writable (EACCES)',
      installed: () => true,
      controlPort: () => 4191,
      portInUse: async (p) => p === 4191,
    }));
    assert.equal(r.success, false);
    golden('check-pre-failing.txt', renderText(r));
  });
});
