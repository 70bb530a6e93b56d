// mesh stat, edges and prometheus-config on an empty mesh and in bad states: an empty table with a
// hint and exit 0, or one line saying what is wrong and how to fix it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestMesh, freePort, assertOneLineError } from './support/mesh.js';

describe('mesh stat on an empty mesh and in bad states', () => {
  const m = new TestMesh();
  before(() => m.install(['--scrape-interval', '500ms']));
  after(() => m.cleanup());

  it('prints an empty table and a hint, and exits 0', async () => {
    const r = await m.cli(['stat', 'deployments']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^NAME\s+MESHED\s+SUCCESS\s+RPS\s+LATENCY_P50\s+LATENCY_P95\s+LATENCY_P99\s+TCP_CONN\n$/);
    assert.match(r.stderr, /No traffic yet/);
  });

  it('prints an empty array as json', async () => {
    const r = await m.cli(['stat', 'po', '-A', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), []);
  });

  it('prints no edges, and a Prometheus config without targets', async () => {
    const e = await m.cli(['edges', 'deploy']);
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stdout, /^SRC\s+DST\s+SRC_NS\s+DST_NS\s+SECURED\s+PROTOCOL\n$/);
    const p = await m.cli(['prometheus-config']);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /job_name: mesh-proxy/);
    assert.match(p.stdout, /static_configs: \[\]/);
  });

  const refusals: { args: string[]; error: RegExp }[] = [
    { args: ['stat', 'gadgets'], error: /unknown resource type 'gadgets'/ },
    { args: ['stat', 'deploy', 'nope'], error: /no deployment 'nope' in namespace default/ },
    { args: ['stat', 'deploy', '--to', 'svc/nope'], error: /no service 'nope'/ },
    { args: ['stat', 'deploy', '-t', 'a-while'], error: /time window 'a-while' is not a duration/ },
    { args: ['stat', 'deploy', '-o', 'yaml'], error: /unknown output format 'yaml'/ },
    { args: ['edges', 'namespaces'], error: /between deployments or pods/ },
  ];
  for (const c of refusals) {
    it(`refuses mesh ${c.args.join(' ')} with one line and a hint`, async () => assertOneLineError(await m.cli(c.args), c.error));
  }

  it('says when Prometheus cannot be reached', async () => {
    const port = await freePort();
    assertOneLineError(await m.cli(['stat', 'deploy', '--prometheus', `http://127.0.0.1:${port}`]), /cannot reach Prometheus at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
  });

  it('says when the control plane is not running, and how to start it', async () => {
    const down = await m.cli(['uninstall']);
    assert.equal(down.code, 0, down.stderr);
    assertOneLineError(await m.cli(['stat', 'deploy']), /no control plane is answering.*mesh( --state-dir \S+)? install/);
    assertOneLineError(await m.cli(['edges', 'deploy']), /no control plane is answering/);
    assertOneLineError(await m.cli(['prometheus-config']), /no control plane is answering/);
  });
});
