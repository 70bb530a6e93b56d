#!/usr/bin/env node
// Copies the dashboard's browser libraries (uPlot for charts, dagre for the service graph's layout) from their npm
// packages (dev dependencies) into dist/src/dashboard/assets, with their licenses, so the package ships them and
// the dashboard works offline. The source-map comments go: the maps are not shipped.
//   node scripts/dashboard-assets.mjs        (npm run build, test, bench and image:local run it after tsc)
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'dist', 'src', 'dashboard', 'assets');
const require = createRequire(join(ROOT, 'package.json'));
const pkg = (name) => dirname(require.resolve(`${name}/package.json`));

/** [package, file in it, name in assets/] */
const FILES = [
  ['uplot', 'dist/uPlot.iife.min.js', 'uPlot.iife.min.js'],
  ['uplot', 'dist/uPlot.min.css', 'uPlot.min.css'],
  ['uplot', 'LICENSE', 'uPlot.LICENSE.txt'],
  ['@dagrejs/dagre', 'dist/dagre.min.js', 'dagre.min.js'],
  ['@dagrejs/dagre', 'dist/dagre.min.js.LEGAL.txt', 'dagre.min.js.LEGAL.txt'], // named by the file's license comment,
];

mkdirSync(OUT, { recursive: true });
let bytes = 0;
for (const [name, file, as] of FILES) {
  let from;
  try {
    from = join(pkg(name), file);
  } catch {
    process.stderr.write(`dashboard-assets: ${name} is not installed: run npm ci (it is a dev dependency)\n`);
    process.exit(1);
  }
  const to = join(OUT, as);
  if (as.endsWith('.js')) writeFileSync(to, readFileSync(from, 'utf8').replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n'));
  else copyFileSync(from, to);
  bytes += readFileSync(to).length;
}
process.stderr.write(`dashboard-assets: ${FILES.length} files, ${(bytes / 1024).toFixed(0)} KiB in ${OUT.slice(ROOT.length + 1)}\n`);
