// Bad input and bad states: one line saying what is wrong and how to fix it, a non-zero exit,
// no stack trace, and nothing on disk lost or half-written.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { mesh, TestMesh, freePort, ECHO_APP, assertOneLineError, waitFor, alive } from './support/mesh.js';

/** The error line: exactly one line starting with error:, with a hint after the dash. */
describe('mesh on bad input', () => {
  const empty = mkdtempSync(join(tmpdir(), 'mesh-empty-'));
  after(() => rmSync(empty, { recursive: true, force: true }));

  const cases: { name: string; args: string[]; error: RegExp }[] = [
    { name: 'an unknown command', args: ['frobnicate'], error: /unknown command 'frobnicate'/ },
    { name: 'an unknown flag', args: ['install', '--frob'], error: /unknown option '--frob'/ },
    { name: 'a run with nothing installed', args: ['run', '--name', 'web', '--port', '8080', '--', 'true'], error: /not installed.*mesh( --state-dir \S+)? install/ },
    { name: 'an uninstall with nothing installed', args: ['uninstall'], error: /not installed/ },
    { name: 'an invalid service name', args: ['run', '--name', 'Web_1', '--port', '8080', '--', 'true'], error: /service name 'Web_1' is not a valid name/ },
    { name: 'a port out of range', args: ['run', '--name', 'web', '--port', '70000', '--', 'true'], error: /port '70000'/ },
    { name: 'an unknown output format', args: ['version', '-o', 'xml'], error: /unknown output format 'xml'/ },
    { name: 'an invalid certificate lifetime', args: ['install', '--cert-lifetime', 'soon'], error: /not a duration/ },
  ];
  for (const c of cases) {
    it(`refuses ${c.name} with one line and a hint`, async () => {
      const r = await mesh(['--state-dir', join(empty, 'state'), ...c.args]);
      assertOneLineError(r, c.error);
      assert.ok(!existsSync(join(empty, 'state', 'mesh.json')), 'nothing installed by a refused command');
    });
  }
});

describe('mesh in bad states', () => {
  const m = new TestMesh();
  before(() => m.install());
  after(() => m.cleanup());

  it('names a corrupt config file and changes nothing', async () => {
    const path = join(m.dir, 'mesh.json');
    const good = readFileSync(path, 'utf8');
    writeFileSync(path, '{"platform": "local", ');
    try {
      const r = await m.cli(['run', '--name', 'web', '--port', '8080', '--', 'true']);
      assertOneLineError(r, /mesh\.json is corrupt/);
      assert.equal(readFileSync(path, 'utf8'), '{"platform": "local", ');
    } finally {
      writeFileSync(path, good);
    }
  });

  it('says which secret is missing', async () => {
    const path = join(m.dir, 'secrets', 'join.key');
    const key = readFileSync(path);
    rmSync(path);
    try {
      const r = await m.cli(['run', '--name', 'web', '--port', String(await freePort()), '--', 'true']);
      assertOneLineError(r, /join key is missing/);
    } finally {
      writeFileSync(path, key, { mode: 0o600 });
    }
  });

  it('refuses an app port that is already in use', async () => {
    const srv = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => srv.once('listening', r));
    try {
      const port = (srv.address() as net.AddressInfo).port;
      const r = await m.cli(['run', '-d', '--name', 'web', '--port', String(port), '--', process.execPath, ECHO_APP]);
      assertOneLineError(r, new RegExp(`port 127.0.0.1:${port} is already in use`));
    } finally {
      srv.close();
    }
  });

  it('refuses a second workload under a running instance name', async () => {
    await m.run('web', { extra: ['--instance', 'web-one'] });
    const r = await m.cli(['run', '-d', '--name', 'web', '--instance', 'web-one', '--port', String(await freePort()), '--', process.execPath, ECHO_APP]);
    assertOneLineError(r, /workload web-one is already running/);
  });

  it('reports an app command that does not exist', async () => {
    const r = await m.cli(['run', '-d', '--name', 'ghost', '--port', String(await freePort()), '--', 'no-such-command-here']);
    assertOneLineError(r, /command not found/);
    const left = readdirSync(join(m.dir, 'workloads')).filter((f) => f.startsWith('ghost'));
    assert.deepEqual(left, [], 'no record left for a workload that never ran');
  });

  it('reports a control plane that is not running when a new service needs a certificate', async () => {
    const pid = m.controlPid()!;
    process.kill(pid, 'SIGTERM');
    await waitFor('the control plane to exit', () => !alive(pid), 10_000, 50);
    const r = await m.cli(['run', '-d', '--name', 'fresh', '--port', String(await freePort()), '--', process.execPath, ECHO_APP]);
    assertOneLineError(r, /control plane/);
    const back = await m.cli(['install']);
    assert.equal(back.code, 0, back.stderr);
  });
});
