// End to end through the real binary: install, workloads over mTLS, control-plane outage and
// restart, and an uninstall that leaves nothing running.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { TestMesh, request, waitFor, alive, type WorkloadInfo } from './support/mesh.js';

describe('the local mesh, end to end', () => {
  const m = new TestMesh();
  let web1: WorkloadInfo;
  let web2: WorkloadInfo;
  let client: WorkloadInfo;
  const pids: number[] = [];
  /** A CA file the client's sidecar must not load (issue 14) and its app must get. */
  const EXTRA_CA = join(m.dir, 'identity', 'trust-anchor.crt');

  before(async () => {
    await m.install();
  });
  after(async () => {
    await m.cleanup();
  });

  it('installs the identity with private keys readable only by the owner', () => {
    for (const f of ['identity/trust-anchor.key', 'identity/issuer.key', 'secrets/join.key', 'secrets/admin.token']) {
      assert.equal(statSync(join(m.dir, f)).mode & 0o777, 0o600, f);
    }
    assert.match(readFileSync(join(m.dir, 'identity/trust-anchor.crt'), 'utf8'), /BEGIN CERTIFICATE/);
  });

  it('says it is already installed when run twice, and changes nothing', async () => {
    const before = readFileSync(join(m.dir, 'mesh.json'), 'utf8');
    const anchor = readFileSync(join(m.dir, 'identity/trust-anchor.crt'), 'utf8');
    const r = await m.cli(['install']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /already installed/);
    assert.match(r.stderr, /platform: local/);
    assert.equal(readFileSync(join(m.dir, 'mesh.json'), 'utf8'), before);
    assert.equal(readFileSync(join(m.dir, 'identity/trust-anchor.crt'), 'utf8'), anchor);
  });

  it('prints the client and control-plane versions', async () => {
    const r = await m.cli(['version', '-o', 'json']);
    assert.equal(r.code, 0);
    const v = JSON.parse(r.stdout) as { client: string; server: string };
    assert.equal(v.server, v.client);
  });

  it('runs three workloads whose traffic crosses the mesh over mTLS', async () => {
    [web1, web2, client] = await Promise.all([m.run('web', { version: 'v1' }), m.run('web', { version: 'v2' }), m.run('client', { env: { NODE_EXTRA_CA_CERTS: EXTRA_CA } })]);
    pids.push(web1.pid, web1.appPid, web2.pid, web2.appPid, client.pid, client.appPid);
    const seen = new Set<string>();
    await waitFor('both web endpoints to serve', async () => {
      const r = await request(client.outbound, { path: '/hi', headers: { host: 'web:9080' } });
      assert.equal(r.status, 200);
      const body = JSON.parse(r.body) as { instance: string; headers: Record<string, string> };
      assert.equal(body.headers['mesh-client-id'], 'spiffe://cluster.local/ns/default/sa/client');
      seen.add(body.instance);
      return seen.size === 2;
    });
  });

  it('gives the app MESH_OUTBOUND and HTTP_PROXY pointing at its sidecar', async () => {
    const env = readFileSync(`/proc/${client.appPid}/environ`, 'utf8').split('\0');
    assert.ok(env.includes(`MESH_OUTBOUND=${client.outbound}`));
    assert.ok(env.includes(`HTTP_PROXY=http://${client.outbound}`));
    // The sidecar runs with two malloc arenas (issue 14); its app gets the environment without them.
    const sidecarEnv = readFileSync(`/proc/${client.pid}/environ`, 'utf8').split('\0');
    if (process.env.MALLOC_ARENA_MAX === undefined) {
      assert.ok(sidecarEnv.includes('MALLOC_ARENA_MAX=2'));
      assert.ok(!env.some((e) => e.startsWith('MALLOC_ARENA_MAX=') || e.startsWith('MESH_SIDECAR_MALLOC_ARENAS=')));
    }
    // The sidecar runs without NODE_EXTRA_CA_CERTS (it trusts the mesh's anchors only); the app keeps it.
    assert.ok(!sidecarEnv.some((e) => e.startsWith('NODE_EXTRA_CA_CERTS=')));
    assert.ok(env.includes(`NODE_EXTRA_CA_CERTS=${EXTRA_CA}`));
    assert.ok(!env.some((e) => e.startsWith('MESH_APP_NODE_EXTRA_CA_CERTS=')));
    const r = await request(client.outbound, { path: 'http://web:9080/abs', headers: { host: 'web:9080' } });
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.body) as { path: string }).path, '/abs');
  });

  it('keeps traffic flowing on the last config while the control plane is down', async () => {
    const cp = m.controlPid()!;
    process.kill(cp, 'SIGKILL');
    await waitFor('the control plane to die', () => !alive(cp));
    for (let i = 0; i < 20; i++) {
      const r = await request(client.outbound, { path: '/during-outage', headers: { host: 'web' } });
      assert.equal(r.status, 200);
    }
  });

  it('refuses to start a new service while the control plane is down, with a hint', async () => {
    const port = 1 + (await import('./support/mesh.js').then((s) => s.freePort()));
    const r = await m.cli(['run', '-d', '--name', 'newcomer', '--port', String(port), '--', process.execPath, '-e', 'setInterval(()=>{},1e6)']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /control plane/);
    assert.match(r.stderr, /mesh( --state-dir \S+)? install/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });

  it('restarts a proxy from its cached certificate and config while the control plane is down', async () => {
    const r = await m.cli(['stop', client.instance]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!alive(client.pid) && !alive(client.appPid));
    client = await m.run('client');
    pids.push(client.pid, client.appPid);
    const reply = await waitFor('the restarted client to reach web', async () => {
      const x = await request(client.outbound, { path: '/after-restart', headers: { host: 'web' } });
      return x.status === 200 ? x : undefined;
    });
    assert.equal(reply!.status, 200);
  });

  it('resumes pushes when the control plane comes back', async () => {
    const r = await m.cli(['install']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /was not running: started/);
    const web3 = await m.run('web', { version: 'v3' });
    pids.push(web3.pid, web3.appPid);
    await waitFor('the client to learn about web v3', async () => {
      const x = await request(client.outbound, { path: '/new', headers: { host: 'web' } });
      return (JSON.parse(x.body) as { version: string }).version === 'v3';
    }, 20_000, 20);
  });

  it('uninstalls every process it started, and --purge removes the state', async () => {
    const cp = m.controlPid()!;
    const r = await m.cli(['uninstall', '--purge']);
    assert.equal(r.code, 0, r.stderr);
    for (const pid of [...pids, cp]) assert.ok(!alive(pid), `process ${pid} still running`);
    assert.ok(!existsSync(join(m.dir, 'mesh.json')));
  });
});
