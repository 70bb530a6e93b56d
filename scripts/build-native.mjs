#!/usr/bin/env node
// Builds native/original_dst.c (the SO_ORIGINAL_DST reader of transparent TCP capture on Kubernetes) into
// native/build/original_dst.node with the C compiler alone: Node-API headers from the node-api-headers package
// (a dev dependency) or Node's own include dir; no node-gyp, so nothing is downloaded. Linux only. Without a compiler
// or headers it says so and exits 0: the proxy then carries HTTP by Host, and closes opaque TCP that reaches its
// outbound port through iptables, saying why.
//   node scripts/build-native.mjs        (npm run build, test, bench and image:local run it after tsc)
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'native', 'original_dst.c');
const OUT = join(ROOT, 'native', 'build', 'original_dst.node');
const say = (msg) => process.stderr.write(`build-native: ${msg}\n`);

function headers() {
  const dirs = [];
  try {
    dirs.push(dirname(createRequire(import.meta.url).resolve('node-api-headers/include/node_api.h')));
  } catch {
    // not installed (npm ci --omit=dev)
  }
  dirs.push(resolve(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node', '/usr/local/include/node');
  return dirs.find((d) => existsSync(join(d, 'node_api.h')));
}

function compiler() {
  for (const cc of [process.env.CC, 'cc', 'gcc', 'clang'].filter(Boolean)) {
    if (spawnSync(cc, ['--version'], { stdio: 'ignore' }).status === 0) return cc;
  }
  return undefined;
}

if (process.platform !== 'linux') {
  say(`skipped: SO_ORIGINAL_DST is Linux's (this is ${process.platform})`);
  process.exit(0);
}
if (existsSync(OUT) && statSync(OUT).mtimeMs >= statSync(SRC).mtimeMs) process.exit(0);
const inc = headers();
const cc = compiler();
if (!inc || !cc) {
  say(`not built: no ${!cc ? 'C compiler (cc, gcc or clang; Debian: apt-get install gcc libc6-dev)' : 'Node-API headers (npm install, for the node-api-headers dev dependency)'}; ` +
    'transparent capture of opaque TCP is off in this build (HTTP is still routed by its Host)');
  process.exit(0);
}
mkdirSync(dirname(OUT), { recursive: true });
const tmp = `${OUT}.${process.pid}`;
try {
  // No -lnode: Node-API symbols resolve against the running node when it loads the addon.
  execFileSync(cc, ['-shared', '-fPIC', '-O2', '-I', inc, SRC, '-o', tmp], { stdio: ['ignore', 'inherit', 'inherit'] });
  renameSync(tmp, OUT);
} catch (err) {
  say(`not built: ${cc} failed (${err.message.split('\n')[0]}); transparent capture of opaque TCP is off in this build`);
  process.exit(0);
}
