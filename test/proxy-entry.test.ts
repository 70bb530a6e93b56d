// The injected Kubernetes proxy's command line runs from a lean entry, without the CLI (issue 14):
// which command lines take it, and that the real binary then never resolves commander or chalk.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { injectedProxyFlags } from '../src/platform/kubernetes/proxy-main.js';
import { assertOneLineError, mesh } from './support/mesh.js';

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
      // A resolve hook that fails the process if the CLI's libraries are loaded.
      const hook = 'export async function resolve(s, c, n) { if (s === "commander" || s === "chalk") throw new Error("the CLI was loaded: " + s); return n(s, c); }';
      writeFileSync(join(dir, 'no-cli.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});\n`);
      env = { NODE_OPTIONS: `--import=${join(dir, 'no-cli.mjs')}`, MESH_IDENTITY_TOKEN_FILE: '', MESH_PLATFORM: '' };
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('runs the injected command line without commander or chalk, and reports a failure in one line', async () => {
      const r = await mesh(['proxy', '--platform', 'kubernetes', '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0'], { env });
      assertOneLineError(r, /MESH_IDENTITY_TOKEN_FILE is not set/);
      assert.doesNotMatch(r.stderr, /CLI was loaded/);
    });

    it('still gives the CLI any other proxy command line', async () => {
      const r = await mesh(['proxy', '--platform', 'kubernetes', '--help'], { env });
      assert.match(r.stderr, /the CLI was loaded: commander/);
    });
  });
});
