#!/usr/bin/env node
// Entry point of the one mesh binary: CLI, control plane and sidecar proxy. CommonJS (bin/package.json), so an
// injected Kubernetes proxy's command line runs the one-file bundle of src/platform/kubernetes/proxy-main.ts
// without the CLI or Node's ES module loader (~2 MB less RSS per pod, issue 14). The CLI is ES modules.
'use strict';
const { statSync } = require('node:fs');
const { join } = require('node:path');

/** The bundle scripts/bundle.mjs wrote, unless it is missing or older than tsc's output (then that output). */
function lean() {
  const js = join(__dirname, '..', 'dist', 'src', 'platform', 'kubernetes', 'proxy-main.js');
  const cjs = js.replace(/\.js$/, '.cjs');
  try {
    if (statSync(cjs).mtimeMs >= statSync(js).mtimeMs) return Promise.resolve(require(cjs));
  } catch {
    // no bundle
  }
  return import(js);
}

const args = process.argv.slice(2);
(args.includes('proxy') ? lean() : Promise.resolve(null)).then((injected) => {
  const flags = injected?.injectedProxyFlags(args) ?? null;
  if (injected && flags) return injected.runInjectedProxy(flags);
  return import('../dist/src/cli.js').then((cli) => cli.main(process.argv));
});
