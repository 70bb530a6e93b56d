// Traffic through the proxies follows `mesh route set`: an 80/20 split within ±2 points over
// 10 000 requests, and a header match that sends all of jason's requests to v3 and nobody else's.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { TestMesh, request, waitFor, type WorkloadInfo } from './support/mesh.js';

describe('routing through the proxies', () => {
  const m = new TestMesh();
  let client: WorkloadInfo;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

  before(async () => {
    await m.install();
    [client] = await Promise.all([m.run('productpage'), ...['v1', 'v2', 'v3'].map((version) => m.run('reviews', { version }))]);
    await waitFor('all three versions to serve', async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 30; i++) seen.add(await versionOf({}));
      return seen.size === 3;
    }, 60_000);
  });
  after(async () => {
    agent.destroy();
    await m.cleanup();
  });

  async function versionOf(headers: Record<string, string>): Promise<string> {
    const r = await request(client.outbound, { path: '/reviews/0', headers: { host: 'reviews:9080', ...headers }, agent });
    assert.equal(r.status, 200, r.body);
    return (JSON.parse(r.body) as { version: string }).version;
  }

  /** Sends n requests, 32 at a time, and counts the versions that answered. */
  async function spread(n: number, headers: Record<string, string> = {}): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < n) {
        next++;
        const v = await versionOf(headers);
        counts.set(v, (counts.get(v) ?? 0) + 1);
      }
    }));
    return counts;
  }

  it('splits 80/20 by version within ±2 points over 10 000 requests', async () => {
    const r = await m.cli(['route', 'set', 'reviews', 'v1=80', 'v2=20']);
    assert.equal(r.code, 0, r.stderr);
    const probe = await spread(300);
    assert.equal(probe.get('v3') ?? 0, 0, 'v3 (weight 0) answered: the route is not applied');
    const counts = await spread(10_000);
    const share = (v: string) => (100 * (counts.get(v) ?? 0)) / 10_000;
    assert.ok(Math.abs(share('v1') - 80) <= 2, `v1 got ${share('v1')}%`);
    assert.ok(Math.abs(share('v2') - 20) <= 2, `v2 got ${share('v2')}%`);
    assert.equal(counts.get('v3') ?? 0, 0, 'v3 has weight 0');
  });

  it("sends all of jason's requests to v3 and none of the others'", async () => {
    const r = await m.cli(['route', 'set', 'reviews', 'v3', '--match', 'header:end-user=jason']);
    assert.equal(r.code, 0, r.stderr);
    const jason = await spread(1000, { 'end-user': 'jason' });
    assert.deepEqual([...jason.keys()], ['v3'], `jason reached ${[...jason.keys()].join(', ')}`);
    const cases: Record<string, string>[] = [{}, { 'end-user': 'alice' }, { 'end-user': 'jason2' }];
    for (const headers of cases) {
      const others = await spread(1000, headers);
      assert.equal(others.get('v3') ?? 0, 0, `${JSON.stringify(headers)} reached v3`);
    }
  });
});
