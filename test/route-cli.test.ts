// mesh route end to end through the real binary: routes are stored by the control plane, reach
// every proxy (the CLI waits for them), round-trip through YAML, and bad input changes nothing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestMesh, waitFor, type WorkloadInfo } from './support/mesh.js';
import { StateDir } from '../src/platform/local/state.js';
import { adminClient } from '../src/platform/local/control.js';

describe('mesh route, end to end', () => {
  const m = new TestMesh();
  const reviews: WorkloadInfo[] = [];
  const routesFile = () => join(m.dir, 'config', 'routes.json');
  const stored = () => (existsSync(routesFile()) ? readFileSync(routesFile(), 'utf8') : null);

  before(async () => {
    await m.install();
    reviews.push(...(await Promise.all(['v1', 'v2', 'v3'].map((version) => m.run('reviews', { version })))));
  });
  after(async () => {
    for (const w of reviews) {
      try {
        process.kill(w.pid, 'SIGCONT');
      } catch {
        // already gone
      }
    }
    await m.cleanup();
  });

  it('sets a split and waits until every proxy has applied it', async () => {
    const r = await m.cli(['route', 'set', 'reviews', 'v1=80', 'v2=20']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /route reviews applied \(v1 80%, v2 20%\); 3\/3 proxies up to date/);
    const doc = JSON.parse(stored()!) as { routes: { metadata: { name: string }; spec: { rules: unknown[] } }[] };
    assert.deepEqual(doc.routes.map((x) => x.metadata.name), ['reviews']);
    assert.deepEqual(doc.routes[0]!.spec.rules, [{ backends: [{ version: 'v1', weight: 80 }, { version: 'v2', weight: 20 }] }]);
  });

  it('adds a header rule ahead of the default, and replaces it when the same match is set again', async () => {
    let r = await m.cli(['route', 'set', 'reviews', 'v2', '--match', 'header:end-user=jason']);
    assert.equal(r.code, 0, r.stderr);
    r = await m.cli(['route', 'set', 'reviews', 'v3', '--match', 'header:end-user=jason', '--timeout', '500ms', '--retries', '2']);
    assert.equal(r.code, 0, r.stderr);
    r = await m.cli(['route', 'get', 'reviews']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^RULE\s+MATCH\s+BACKENDS\s+TIMEOUT\s+RETRIES\s+FAULT$/);
    assert.match(lines[1]!, /^1\s+header:end-user=jason\s+v3 100%\s+500ms\s+2\s+-$/);
    assert.match(lines[2]!, /^2\s+\(default\)\s+v1 80%, v2 20%\s+-\s+-\s+-$/);
    assert.equal(lines.length, 3);
  });

  it('prints YAML that applies back unchanged', async () => {
    const before = stored();
    const y = await m.cli(['route', 'get', 'reviews', '-o', 'yaml']);
    assert.equal(y.code, 0, y.stderr);
    assert.match(y.stdout, /^apiVersion: mesh.io\/v1alpha1\nkind: Route\n/);
    const file = join(m.dir, 'reviews.yaml');
    writeFileSync(file, y.stdout);
    const r = await m.cli(['route', 'apply', '-f', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /route reviews unchanged/);
    assert.equal(stored(), before);
    const j = await m.cli(['route', 'get', 'reviews', '-o', 'json']);
    assert.deepEqual(JSON.parse(j.stdout), (JSON.parse(before!) as { routes: unknown[] }).routes[0]);
  });

  it('applies an edited YAML file and waits for the proxies', async () => {
    const y = await m.cli(['route', 'get', 'reviews', '-o', 'yaml']);
    const file = join(m.dir, 'edited.yaml');
    writeFileSync(file, y.stdout.replace('weight: 80', 'weight: 50').replace('weight: 20', 'weight: 50'));
    const r = await m.cli(['route', 'apply', '-f', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /route reviews applied; 3\/3 proxies up to date/);
    const l = await m.cli(['route', 'list']);
    assert.match(l.stdout, /reviews\s+2\s+v1 50%, v2 50%\s+1/);
  });

  it('accepts a version without a live endpoint, with a warning', async () => {
    const r = await m.cli(['route', 'set', 'reviews', 'v1=90', 'v4=10', '--no-wait']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /‼ version v4 of reviews has no live endpoint \(live: v1, v2, v3\)/);
    assert.match(r.stdout, /not waiting for proxies/);
  });

  describe('bad input changes nothing', () => {
    const bad: { name: string; args: string[]; error: RegExp; file?: string }[] = [
      { name: 'an unknown service', args: ['route', 'set', 'reveiws', 'v1'], error: /service reveiws has no live endpoint in namespace default \(known: reviews\)/ },
      { name: 'a service of another namespace', args: ['route', 'set', 'reviews', 'v1', '-n', 'prod'], error: /no services run there/ },
      { name: 'weights that are all zero', args: ['route', 'set', 'reviews', 'v1=0', 'v2=0'], error: /the weights are all zero/ },
      { name: 'a fractional weight', args: ['route', 'set', 'reviews', 'v1=1.5'], error: /weight '1.5' of v1 is not an integer/ },
      { name: 'a version named twice', args: ['route', 'set', 'reviews', 'v1=1', 'v1=2'], error: /version v1 is named twice/ },
      { name: 'a header match without a value', args: ['route', 'set', 'reviews', 'v3', '--match', 'header:end-user'], error: /'header:end-user' needs a value — use header:end-user=VALUE/ },
      { name: 'a bad regex', args: ['route', 'set', 'reviews', 'v3', '--match', 'header:end-user~(ja'], error: /not a valid regular expression/ },
      { name: 'a bad duration', args: ['route', 'set', 'reviews', 'v1', '--timeout', '5x'], error: /timeout '5x' is not a duration/ },
      { name: 'a bad fault', args: ['route', 'set', 'reviews', 'v1', '--fault-abort', '200@5%'], error: /'200@5%' is not an abort/ },
      { name: 'a bad gRPC fault', args: ['route', 'set', 'reviews', 'v1', '--fault-abort-grpc', '99@5%'], error: /'99@5%' is not a gRPC abort — give a gRPC status from 1 to 16/ },
      { name: 'an unknown gRPC retry condition', args: ['route', 'set', 'reviews', 'v1', '--retries', '2', '--retry-on', 'unavailible'], error: /cannot retry on 'unavailible' — use connect-failure, 5xx, cancelled, deadline-exceeded/ },
      { name: 'a YAML syntax error', args: ['route', 'apply', '-f', 'FILE'], file: 'spec:\n  rules: [\n', error: /bad\.yaml:\d+:\d+: / },
      { name: 'an unknown YAML field', args: ['route', 'apply', '-f', 'FILE'], file: 'apiVersion: mesh.io/v1alpha1\nkind: Route\nmetadata: {name: reviews}\nspec:\n  rules:\n    - backend: [{version: v1, weight: 1}]\n', error: /spec\.rules\[0\]\.backend: unknown field/ },
      { name: 'a missing file', args: ['route', 'apply', '-f', '/nonexistent/routes.yaml'], error: /cannot read \/nonexistent\/routes.yaml: ENOENT/ },
    ];
    for (const row of bad) {
      it(`refuses ${row.name} in one line with a hint`, async () => {
        const before = stored();
        const args = row.args.map((a) => (a === 'FILE' ? join(m.dir, 'bad.yaml') : a));
        if (row.file) writeFileSync(join(m.dir, 'bad.yaml'), row.file);
        const r = await m.cli(args);
        assert.notEqual(r.code, 0);
        const errors = r.stderr.split('\n').filter((l) => l.startsWith('error:'));
        assert.equal(errors.length, 1, r.stderr);
        assert.match(errors[0]!, row.error);
        assert.match(errors[0]!, / — /, 'has a hint');
        assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
        assert.equal(stored(), before);
      });
    }

    it('the control plane itself refuses an invalid document with 422', async () => {
      const before = stored();
      const state = new StateDir(m.dir);
      const client = adminClient(state);
      try {
        const r = await client.request<{ error: string }>('PUT', '/v1/config/routes', { routes: [{ apiVersion: 'mesh.io/v1alpha1', kind: 'Route', metadata: { name: 'reviews' }, spec: { rules: [{ backends: [{ version: 'v1', weight: 0 }] }] } }] }, { bearer: state.adminToken() });
        assert.equal(r.status, 422);
        assert.match(r.body.error, /weights are all zero/);
      } finally {
        client.close();
      }
      assert.equal(stored(), before);
    });
  });

  it('reports the proxies that lag and exits non-zero when the wait times out', async () => {
    const stopped = reviews[1]!;
    process.kill(stopped.pid, 'SIGSTOP');
    try {
      const r = await m.cli(['route', 'set', 'reviews', 'v2', '--wait-timeout', '1s']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, new RegExp(`1/3 proxies have not applied it after 1s: ${stopped.instance} \\(at `));
      assert.equal((JSON.parse(stored()!) as { routes: { spec: { rules: { backends: { version: string }[] }[] } }[] }).routes[0]!.spec.rules[1]!.backends[0]!.version, 'v2', 'the change is stored');
    } finally {
      process.kill(stopped.pid, 'SIGCONT');
    }
    // Once it runs again it catches up, and the next change waits for it as for the others.
    await waitFor('the resumed proxy to catch up', async () => {
      const r = await m.cli(['route', 'set', 'reviews', 'v1=1', 'v2=1', 'v3=1', '--wait-timeout', '5s']);
      return r.code === 0 && /3\/3 proxies up to date/.test(r.stderr);
    }, 30_000, 500);
  });

  it('clears a route: no route stored, requests spread evenly again', async () => {
    let r = await m.cli(['route', 'clear', 'reviews']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /route reviews cleared; 3\/3 proxies up to date/);
    assert.deepEqual(JSON.parse(stored()!), { routes: [] });
    r = await m.cli(['route', 'get', 'reviews']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /service reviews has no route in namespace default — its requests spread evenly over v1, v2, v3/);
    r = await m.cli(['route', 'list', '-o', 'json']);
    assert.deepEqual(JSON.parse(r.stdout), { apiVersion: 'mesh.io/v1alpha1', kind: 'RouteList', items: [] });
    r = await m.cli(['route', 'clear', 'reviews']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /has no route/);
  });
});
