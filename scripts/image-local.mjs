#!/usr/bin/env node
// The mesh image without Docker, for the kube-local test cluster (../shared/kube): the Dockerfile's runtime stage
// laid out by hand (its COPY lines, production dependencies only, user 2103, entrypoint node /opt/mesh/bin/mesh.js)
// on kube-local's Node base (node, busybox, iptables), imported into the cluster's containerd under the name
// `mesh install` renders, so pods use it with imagePullPolicy IfNotPresent.
//
//   node scripts/image-local.mjs                  build dist/ first (npm run image:local does both)
//   node scripts/image-local.mjs --layout DIR     only lay out the runtime files in DIR (test/image-layout checks it)
//   node scripts/image-local.mjs --where          print the kube-local directory found, or fail saying why
//
// kube-local is found at $MESH_KUBE_LOCAL, else ../shared/kube next to this checkout (or next to the main
// checkout of a git worktree).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const APP_DIR = '/opt/mesh';
const die = (msg) => {
  process.stderr.write(`image-local: ${msg}\n`);
  process.exit(1);
};

/** The COPY sources of the Dockerfile's last stage; the build stage's /src/dist/src is this checkout's dist/src. */
export function runtimeCopies(root = ROOT) {
  const text = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const last = text.slice(text.lastIndexOf('\nFROM '));
  const out = [];
  for (const m of last.matchAll(/^COPY\s+(?:--from=(\S+)\s+)?(.+)$/gm)) {
    const parts = m[2].trim().split(/\s+/);
    parts.pop();
    out.push(...parts.map((p) => (m[1] ? p.replace(/^\/src\//, '') : p)));
  }
  return out.sort();
}

/** What the runtime stage holds in /opt/mesh: the copied files, then `npm ci --omit=dev` as the Dockerfile runs it. */
export function layout(dir, root = ROOT) {
  if (!existsSync(join(root, 'dist', 'src', 'cli.js'))) die('dist/src is not built: run npm run build (or npm run image:local)');
  mkdirSync(dir, { recursive: true });
  for (const src of runtimeCopies(root)) {
    // The addon is built only where a C compiler is (scripts/build-native.mjs): without it the image has no transparent TCP capture.
    if (src.startsWith('native/') && !existsSync(join(root, src))) {
      process.stderr.write(`image-local: ${src} is not built (no C compiler?): the image's sidecars will not capture opaque TCP\n`);
      continue;
    }
    cpSync(join(root, src), join(dir, src), { recursive: true });
  }
  // --prefer-offline: the packages are in npm's cache from this checkout's own npm ci.
  execFileSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'], timeout: 300_000 });
}

/** kube-local's directory, or why there is none. */
export function findKubeLocal(root = ROOT) {
  const candidates = [];
  if (process.env.MESH_KUBE_LOCAL) candidates.push(resolve(process.env.MESH_KUBE_LOCAL));
  else {
    candidates.push(resolve(root, '..', 'shared', 'kube'));
    try {
      // A git worktree: ../shared sits next to the main checkout, whose .git is the common dir.
      const common = execFileSync('git', ['rev-parse', '--path-format=absolute', '--git-common-dir'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      candidates.push(resolve(common, '..', '..', 'shared', 'kube'));
    } catch {
      // not a git checkout
    }
  }
  const found = candidates.find((c) => existsSync(join(c, 'up')) && existsSync(join(c, 'image')));
  return found ? { dir: found } : { why: `no kube-local at ${[...new Set(candidates)].join(' or ')} (set MESH_KUBE_LOCAL to its directory)` };
}

/** The image name `mesh install` renders by default (from the built code, so the two cannot disagree). */
export async function imageName(root = ROOT) {
  const { defaultImage } = await import(join(root, 'dist', 'src', 'platform', 'kubernetes', 'names.js'));
  return defaultImage();
}

/** Builds the image from dist/ and imports it into kube-local's containerd (which must be up); returns its name. */
export async function buildImage(kubeDir, o = {}) {
  const name = o.name ?? (await imageName());
  const rootfs = mkdtempSync(join(tmpdir(), 'mesh-image-rootfs-'));
  try {
    execFileSync(join(kubeDir, 'image'), ['--base', rootfs], { stdio: ['ignore', 'ignore', o.quiet ? 'ignore' : 'inherit'] });
    layout(join(rootfs, APP_DIR));
    execFileSync(join(kubeDir, 'image'), [name, rootfs, '--', 'node', `${APP_DIR}/bin/mesh.js`], {
      stdio: ['ignore', 'ignore', o.quiet ? 'pipe' : 'inherit'],
      env: { ...process.env, IMAGE_USER: '2103:2103', IMAGE_WORKDIR: APP_DIR },
    });
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
  return name;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [flag, arg] = process.argv.slice(2);
  if (flag === '--layout') {
    if (!arg) die('usage: image-local.mjs --layout DIR');
    layout(resolve(arg));
  } else if (flag === '--where') {
    const k = findKubeLocal();
    if (!k.dir) die(k.why);
    console.log(k.dir);
  } else if (flag) {
    die(`unknown option ${flag} (use --layout DIR, --where, or nothing to build and import the image)`);
  } else {
    const k = findKubeLocal();
    if (!k.dir) die(k.why);
    const t0 = Date.now();
    const name = await buildImage(k.dir);
    console.log(`${name} is in kube-local's containerd (${((Date.now() - t0) / 1000).toFixed(1)} s); mesh --platform kubernetes install --apply uses it`);
  }
}
