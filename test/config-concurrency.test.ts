// mesh route and mesh policy on the local platform never overwrite a concurrent change: the control plane writes a
// config document only at the resourceVersion the writer read (409 otherwise, changing nothing), and the CLI reads
// again, re-applies and re-validates its change, or gives up after 3 attempts. The CLIs are real processes against a
// real control plane; test/support/hold-config-writes.ts, loaded into each with --import, holds it between its read
// and its write, so they overlap.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestMesh, assertOneLineError, type CliResult } from './support/mesh.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const route = (name: string, backends: { version: string; weight: number }[]) =>
  ({ apiVersion: 'mesh.io/v1alpha1', kind: 'Route', metadata: { name, namespace: 'default' }, spec: { rules: [{ backends }] } });

describe('concurrent mesh route / mesh policy writers on the local platform', () => {
  const m = new TestMesh();
  const file = (...p: string[]) => readFileSync(join(m.dir, ...p), 'utf8');
  const stored = (kind: string) => (existsSync(join(m.dir, 'config', `${kind}.json`)) ? file('config', `${kind}.json`) : null);
  const conflicts = () => (file('logs', 'control.log').match(/refused a write of the \w+ made at resourceVersion/g) ?? []).length;
  /** Runs the CLI with its config writes held `holdMs` after it made them (a test-only module loaded with --import). */
  const held = (args: string[], holdMs: number): Promise<CliResult> => m.cli(args, { env: {
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${new URL('./support/hold-config-writes.js', import.meta.url).href}`.trim(),
    HOLD_CONFIG_WRITES_MS: String(holdMs),
  }, timeoutMs: 60_000 });

  /** The admin config API, with an expected version as the CLI sends it (?resourceVersion=) or as If-Match. */
  function api(method: string, path: string, o: { body?: unknown; ifMatch?: string } = {}) {
    return m.api(method, path, { bearer: m.adminToken(), json: o.body, headers: o.ifMatch ? { 'if-match': o.ifMatch } : {}, timeoutMs: 15_000 });
  }

  before(async () => {
    await m.install();
    // Routes are validated against live versions: one workload per routed service.
    await Promise.all([m.run('reviews', { version: 'v1' }), m.run('ratings', { version: 'v1' })]);
  });
  after(() => m.cleanup());

  it('keeps both of two mesh route set started at once, for different services', { timeout: 90_000 }, async () => {
    const before = conflicts();
    // Both read the same routes, then hold 2.5 s: the second write is made at a version the first one replaced.
    const [a, b] = await Promise.all([
      held(['route', 'set', 'reviews', 'v1', '--timeout', '700ms'], 2500),
      held(['route', 'set', 'ratings', 'v1', '--retries', '2'], 2500),
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.match(a.stderr, /route reviews applied \(v1 100%\); 2\/2 proxies up to date/);
    assert.match(b.stderr, /route ratings applied \(v1 100%\); 2\/2 proxies up to date/);
    const doc = JSON.parse(stored('routes')!) as { routes: Obj[] };
    const byName = new Map(doc.routes.map((r) => [r.metadata.name as string, r.spec.rules[0]]));
    assert.deepEqual([...byName.keys()].sort(), ['ratings', 'reviews'], 'neither change is lost');
    assert.ok(conflicts() > before, 'one write was refused (409) and retried on the fresh document');
    assert.equal(byName.get('reviews').timeout, '700ms');
    assert.equal(byName.get('ratings').retries.attempts, 2);
    const list = await m.cli(['route', 'list']);
    assert.match(list.stdout, /^ratings\s/m);
    assert.match(list.stdout, /^reviews\s/m);
  });

  it('keeps both of two mesh policy allow started at once', { timeout: 90_000 }, async () => {
    const before = conflicts();
    const [a, b] = await Promise.all([
      held(['policy', 'allow', '--from', 'web', '--to', 'reviews'], 2500),
      held(['policy', 'allow', '--from', 'web', '--to', 'ratings', '--path-prefix', '/ratings'], 2500),
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const rules = (JSON.parse(stored('policies')!) as { policies: Obj[] }).policies.flatMap((p) => p.spec.rules as Obj[]);
    assert.deepEqual(rules.map((r) => `${r.from}->${r.to}`).sort(), ['web->ratings', 'web->reviews'], 'neither rule is lost');
    assert.ok(conflicts() > before, 'one write was refused (409) and retried on the fresh document');
  });

  it('refuses a write at a stale resourceVersion with a 409 Status and changes nothing on disk', async () => {
    const read = await api('GET', '/v1/config/routes');
    assert.equal(read.status, 200);
    const stale = read.body.resourceVersion as string;
    assert.equal(read.headers.etag, `"${stale}"`);
    const first = { routes: [route('reviews', [{ version: 'v1', weight: 100 }])] };
    const w = await api('PUT', `/v1/config/routes?resourceVersion=${encodeURIComponent(stale)}`, { body: first });
    assert.equal(w.status, 200, JSON.stringify(w.body));
    assert.notEqual(w.body.resourceVersion, stale);
    const onDisk = stored('routes');
    const snapshot = (await api('GET', '/v1/config/routes')).body.version;

    // A second writer that read before the first wrote: by query parameter (as the CLI) and by If-Match.
    const second = { routes: [route('ratings', [{ version: 'v1', weight: 100 }])] };
    for (const r of [
      await api('PUT', `/v1/config/routes?resourceVersion=${encodeURIComponent(stale)}`, { body: second }),
      await api('PUT', '/v1/config/routes', { body: second, ifMatch: `"${stale}"` }),
    ]) {
      assert.equal(r.status, 409);
      assert.equal(r.body.kind, 'Status');
      assert.equal(r.body.status, 'Failure');
      assert.equal(r.body.reason, 'Conflict');
      assert.equal(r.body.code, 409);
      assert.equal(r.body.details.resourceVersion, w.body.resourceVersion);
      assert.match(r.body.message, /the routes were changed since resourceVersion .* read them again/);
    }
    assert.equal(stored('routes'), onDisk, 'the file is unchanged');
    const now = await api('GET', '/v1/config/routes');
    assert.deepEqual(now.body.value, first);
    assert.equal(now.body.version, snapshot, 'no new snapshot was pushed');
    // At the current version the same write goes through.
    assert.equal((await api('PUT', '/v1/config/routes', { body: second, ifMatch: `"${now.body.resourceVersion}"` })).status, 200);
  });

  it('gives up after 3 conflicts with one line saying to retry, and overwrites nothing', { timeout: 90_000 }, async () => {
    // Another writer changes the routes every 150 ms, so each of the CLI's writes (held 1 s after its read) is stale.
    let stop = false;
    let last: unknown;
    const other = (async () => {
      for (let n = 1; !stop; n++) {
        const doc = { routes: [route('ratings', [{ version: 'v1', weight: n }])] };
        if ((await api('PUT', '/v1/config/routes', { body: doc })).status === 200) last = doc;
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
    let r: CliResult;
    try {
      r = await held(['route', 'set', 'reviews', 'v1'], 1000);
    } finally {
      stop = true;
      await other;
    }
    assertOneLineError(r, /the routes in .+ were changed by someone else while mesh wrote them \(3 attempts\) — nothing they wrote was overwritten; retry the command/);
    assert.deepEqual(JSON.parse(stored('routes')!), last, "the other writer's last document stands");
  });
});
