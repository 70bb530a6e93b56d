// Workload certificates rotate under steady load without a single failed request.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { TestMesh, request, waitFor, type WorkloadInfo } from './support/mesh.js';

async function expiry(admin: string): Promise<number> {
  const r = await request(admin, { path: '/metrics' });
  return Number(/^identity_cert_expiration_timestamp_seconds(?:\{[^}]*\})? (\S+)$/m.exec(r.body)![1]);
}

describe('certificate rotation', () => {
  const m = new TestMesh();
  let web: WorkloadInfo;
  let client: WorkloadInfo;

  before(async () => {
    await m.install(['--cert-lifetime', '6s']);
    [web, client] = await Promise.all([m.run('web'), m.run('client')]);
  });
  after(() => m.cleanup());

  it('renews at about 70% of the lifetime and drops no request under load', { timeout: 60_000 }, async () => {
    await waitFor('traffic to flow', async () => (await request(client.outbound, { headers: { host: 'web' } })).status === 200);
    // Each sidecar's certificate expiry, sampled through the load: every new value is a rotation.
    const seen = { web: new Set<number>(), client: new Set<number>() };
    const sample = async () => {
      seen.web.add(await expiry(web.admin));
      seen.client.add(await expiry(client.admin));
    };
    await sample();
    const sampler = setInterval(() => void sample().catch(() => {}), 500);
    const pooled = new http.Agent({ keepAlive: true, maxSockets: 4 });
    let ok = 0;
    const failures: string[] = [];
    const deadline = Date.now() + 16_000;
    // Pooled connections and fresh ones, so both old-cert connections and new handshakes are covered.
    await Promise.all(Array.from({ length: 4 }, async (_, w) => {
      while (Date.now() < deadline) {
        try {
          const r = await request(client.outbound, { path: `/rot/${w}`, headers: { host: 'web' }, agent: w % 2 ? pooled : undefined });
          if (r.status === 200) ok++;
          else failures.push(`${r.status} ${r.headers['mesh-proxy-error'] ?? ''}`);
        } catch (err) {
          failures.push((err as Error).message);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }));
    clearInterval(sampler);
    pooled.destroy();
    await sample();
    assert.deepEqual(failures, []);
    assert.ok(ok > 200, `only ${ok} requests`);
    // Over 16 s at a 6 s lifetime (renewal at ~4.2 s) each sidecar rotated at least twice.
    for (const [who, set] of Object.entries(seen)) assert.ok(set.size >= 3, `${who} certificates seen: ${[...set].join(', ')}`);
  });
});

describe('issuer rotation with 24-hour certificates', () => {
  const m = new TestMesh();
  let web: WorkloadInfo;
  let client: WorkloadInfo;

  before(async () => {
    await m.install();
    [web, client] = await Promise.all([m.run('web'), m.run('client')]);
  });
  after(() => m.cleanup());

  it('has every proxy renew within seconds of the rotation, not at 70% of a day', { timeout: 60_000 }, async () => {
    await waitFor('traffic to flow', async () => (await request(client.outbound, { headers: { host: 'web' } })).status === 200);
    const before = { web: await expiry(web.admin), client: await expiry(client.admin) };
    const r = await m.cli(['identity', 'rotate-issuer']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('both sidecars to renew', async () =>
      (await expiry(web.admin)) !== before.web && (await expiry(client.admin)) !== before.client, 10_000, 200);
    const after = await request(client.outbound, { headers: { host: 'web' } });
    assert.equal(after.status, 200);
  });
});
