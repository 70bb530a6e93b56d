// The image's runtime stage, laid out as the Dockerfile lays it out but without Docker (there is no
// engine here) by the script that builds the kube-local image (npm run image:local): production
// dependencies only, then the commands a pod runs. Catches a runtime import of a dev dependency, or a
// file the image does not ship.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './support/mesh.js';

const run = promisify(execFile);

/** The COPY sources of the Dockerfile's last stage (the image users run). */
function runtimeCopies(): string[] {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const last = text.slice(text.lastIndexOf('\nFROM '));
  const out: string[] = [];
  for (const m of last.matchAll(/^COPY\s+(?:--from=(\S+)\s+)?(.+)$/gm)) {
    const parts = m[2]!.trim().split(/\s+/);
    parts.pop();
    // The build stage's dist/src is this checkout's dist/src (built by npm test's tsc).
    out.push(...parts.map((p) => (m[1] ? p.replace(/^\/src\//, '') : p)));
  }
  return out.sort();
}

describe('the image runtime stage, without Docker', () => {
  let dir: string;
  // Rendering needs a context to name, not a reachable cluster: this one points nowhere.
  const mesh = (args: string[]) => run(process.execPath, [join(dir, 'bin', 'mesh.js'), ...args], { cwd: dir, timeout: 30_000, env: { ...process.env, KUBECONFIG: join(dir, 'kubeconfig') } });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mesh-image-'));
    writeFileSync(join(dir, 'kubeconfig'), [
      'apiVersion: v1', 'kind: Config', 'current-context: nowhere',
      'clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:9"}}]',
      'users: [{name: nobody, user: {token: none}}]',
      'contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody}}]', '',
    ].join('\n'));
    await run(process.execPath, [join(ROOT, 'scripts', 'image-local.mjs'), '--layout', dir], { timeout: 170_000 });
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ships what the Dockerfile copies, and no dev dependency', () => {
    assert.deepEqual(runtimeCopies(), ['bin', 'demo', 'dist/src', 'native/build', 'package-lock.json', 'package.json']);
    // The addon comes along where this checkout built it (a C compiler was there).
    const native = existsSync(join(ROOT, 'native', 'build')) ? ['native'] : [];
    assert.deepEqual(readdirSync(dir).filter((f) => f !== 'kubeconfig').sort(), ['bin', 'demo', 'dist', ...native, 'node_modules', 'package-lock.json', 'package.json']);
    assert.deepEqual(readdirSync(join(dir, 'dist')), ['src']);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    // A dev dependency that production code also needs (ws, under client-node) is not dev in the lockfile.
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.keys(pkg.devDependencies).filter((d) => lock.packages[`node_modules/${d}`]?.dev);
    assert.ok(devOnly.includes('typescript'), devOnly.join(' '));
    for (const dev of devOnly) assert.ok(!existsSync(join(dir, 'node_modules', dev)), `${dev} is in the image`);
  });

  it('runs the commands a pod runs with production dependencies only', { timeout: 60_000 }, async () => {
    const help = await mesh(['--help']);
    for (const c of ['control', 'proxy', 'inject', 'install', 'check']) assert.match(help.stdout, new RegExp(`\\b${c}\\b`));
    assert.match((await mesh(['proxy', '--help'])).stdout, /--app-port/);
    assert.match((await mesh(['control', '--help'])).stdout, /--webhook-port/);
    const injected = await mesh(['inject', '--trust-anchors-file', join(ROOT, 'test', 'fixtures', 'kube', 'anchor.crt'), join(ROOT, 'test', 'fixtures', 'kube', 'app.yaml')]);
    assert.match(injected.stdout, /restartPolicy: Always/);
    // The Kubernetes client loads and reports the unreachable API as a failed check, not a crash.
    const check = await mesh(['check', '--pre', '--platform', 'kubernetes', '-o', 'json']).then(
      () => assert.fail('check passed against no cluster'),
      (err: { code: number; stdout: string; stderr: string }) => err,
    );
    assert.equal(check.code, 1, check.stderr);
    assert.match(check.stdout, /kubernetes-api/);
  });

  it('loads the original-destination addon where the proxy looks for it (when this checkout built it)', { skip: !existsSync(join(ROOT, 'native', 'build', 'original_dst.node')) && 'the addon is not built here' }, async () => {
    const code = `import(${JSON.stringify(join(dir, 'dist', 'src', 'proxy', 'capture.js'))}).then((m) => console.log(typeof m.originalDstAddon()))`;
    assert.equal((await run(process.execPath, ['-e', code])).stdout.trim(), 'object');
  });
});
