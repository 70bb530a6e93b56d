#!/usr/bin/env node
// Bundles each sidecar entry (tsc's output) into one CommonJS file beside it, which is what a sidecar runs:
//   dist/src/platform/local/mesh-sidecar.cjs        a local workload's sidecar (mesh run -d, mesh demo)
//   dist/src/platform/kubernetes/proxy-main.cjs     the injected proxy container (bin/mesh.js proxy ...)
// Measured on an idle sidecar (issue 14): Node's ES module loader alone is ~1.8 MB of RSS a CommonJS main never
// loads, and resolving ~70 modules by URL ran hot enough to start the optimizing compiler before any traffic
// (~3 MB of the node binary's code paged in). esbuild does it in ~50 ms; the node_modules packages stay outside.
//   node scripts/bundle.mjs        (npm run build, test, bench and image:local run it after tsc)
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ENTRIES = ['dist/src/platform/local/mesh-sidecar.js', 'dist/src/platform/kubernetes/proxy-main.js'];

// A module's import.meta.url stays its own file's URL (it finds files beside it), taken at run time relative to
// the bundle, so the tree can move (npm pack, the image's /opt/mesh).
const MODULE_URL = `const __meshModuleUrl = (p) => require('node:url').pathToFileURL(require('node:path').join(__dirname, p)).href;`;
const moduleUrl = (out) => ({
  name: 'module-url',
  setup(b) {
    b.onLoad({ filter: /\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta')) return undefined;
      const rel = JSON.stringify(relative(dirname(out), args.path));
      return { contents: text.replace(/\bimport\.meta\.url\b/g, `__meshModuleUrl(${rel})`), loader: 'js' };
    });
  },
});

for (const entry of ENTRIES) {
  const outfile = join(ROOT, entry.replace(/\.js$/, '.cjs'));
  const r = await build({
    entryPoints: [join(ROOT, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    packages: 'external',
    banner: { js: MODULE_URL },
    plugins: [moduleUrl(outfile)],
    logLevel: 'warning',
    metafile: true,
  }).catch(() => process.exit(1)); // esbuild has printed what was wrong
  const bytes = Object.values(r.metafile.outputs)[0].bytes;
  process.stderr.write(`bundle: ${relative(ROOT, outfile)} ${Math.round(bytes / 1024)} KiB from ${Object.keys(r.metafile.inputs).length} modules\n`);
}
