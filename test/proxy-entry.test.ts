// The injected Kubernetes proxy's command line runs from a lean entry, without the CLI (issue 14):
// which command lines take it, and that the real binary then runs the one-file bundle (scripts/bundle.mjs)
// and never resolves commander or chalk; a local workload's sidecar runs its bundle too.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { injectedProxyFlags } from '../src/platform/kubernetes/proxy-main.js';
import { assertOneLineError, mesh, TestMesh } from './support/mesh.js';

describe('injected proxy entry', () => {
  it('takes the command line mesh inject writes, and the platform from the flag or MESH_PLATFORM', () => {
    const ports = ['--inbound-port', '4143', '--outbound-port', '4140', '--admin-port', '4191'];
    const want = { inboundPort: '4143', outboundPort: '4140', adminPort: '4191' };
    assert.deepEqual(injectedProxyFlags(['proxy', '--platform', 'kubernetes', ...ports], {}), want);
    assert.deepEqual(injectedProxyFlags(['--platform', 'kubernetes', 'proxy', ...ports], {}), want);
    assert.deepEqual(injectedProxyFlags(['proxy', '--platform=kubernetes', '--admin-port=9'], {}), { inboundPort: '0', outboundPort: '0', adminPort: '9' });
    assert.deepEqual(injectedProxyFlags(['proxy', ...ports], { MESH_PLATFORM: 'kubernetes' }), want);
    assert.deepEqual(injectedProxyFlags(['proxy'], { MESH_PLATFORM: 'kubernetes' }), { inboundPort: '0', outboundPort: '0', adminPort: '0' });
  });

  it('leaves every other command line to the CLI', () => {
    const env = { MESH_PLATFORM: 'kubernetes' };
    for (const args of [
      ['proxy', '--platform', 'local'],
      ['proxy', '--help'],
      ['proxy', '--name', 'reviews'],
      ['proxy', '--admin-port'],
      ['proxy', '--admin-port', '--help'],
      ['--inbound-port', '1', 'proxy'],
      ['run', 'proxy'],
      ['proxy', 'proxy'],
      [],
    ]) assert.equal(injectedProxyFlags(args, args[1] === '--platform' ? {} : env), null, args.join(' '));
  });

  describe('the binary', () => {
    let dir: string;
    let env: NodeJS.ProcessEnv;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'mesh-entry-'));
      // Hooks that fail the process if the CLI's libraries are loaded, by import (an ES module resolve hook) or by
      // require (bin/mesh.js is CommonJS); the require hook also says when the one-file bundle is loaded.
      const hook = 'export async function resolve(s, c, n) { if (s === "commander" || s === "chalk") throw new Error("the CLI was loaded: " + s); return n(s, c); }';
      writeFileSync(join(dir, 'no-cli.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});\n`);
      writeFileSync(join(dir, 'no-cli.cjs'), [
        "const Module = require('node:module');",
        'const load = Module._load;',
        'Module._load = function (req, ...rest) {',
        '  if (req === "commander" || req === "chalk") throw new Error("the CLI was loaded: " + req);',
        '  if (req.endsWith("proxy-main.cjs")) process.stderr.write("bundle loaded\\n");',
        '  return load.call(this, req, ...rest);',
        '};',
      ].join('\n'));
      env = { NODE_OPTIONS: `--require=${join(dir, 'no-cli.cjs')} --import=${join(dir, 'no-cli.mjs')}`, MESH_IDENTITY_TOKEN_FILE: '', MESH_PLATFORM: '' };
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('runs the injected command line without commander or chalk, and reports a failure in one line', async () => {
      const r = await mesh(['proxy', '--platform', 'kubernetes', '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0'], { env });
      assert.match(r.stderr, /^bundle loaded\n/);
      assertOneLineError({ ...r, stderr: r.stderr.replace(/^bundle loaded\n/, '') }, /MESH_IDENTITY_TOKEN_FILE is not set/);
      assert.doesNotMatch(r.stderr, /CLI was loaded/);
    });

    it('still gives the CLI any other proxy command line', async () => {
      const r = await mesh(['proxy', '--platform', 'kubernetes', '--help'], { env });
      assert.match(r.stderr, /the CLI was loaded: commander/);
    });
  });

  it("runs a local workload's sidecar from the one-file bundle", async (t) => {
    const m = new TestMesh();
    t.after(() => m.cleanup());
    await m.install();
    const w = await m.run('entry');
    const argv = readFileSync(`/proc/${w.pid}/cmdline`, 'utf8').split('\0');
    assert.match(argv.find((a) => a.includes('mesh-sidecar')) ?? argv.join(' '), /platform\/local\/mesh-sidecar\.cjs$/);
  });
});
