#!/usr/bin/env node
// Page load of mesh dashboard in headless Chromium, A/B: this checkout's dashboard against another checkout's (built),
// both on one running mesh, measured in turns so the machine's load falls on both alike. Prints, per page, the median
// time from navigation to the page's first drawn content and to DOMContentLoaded (its scripts run), cold (fresh
// browser context) and warm (assets cached), and the bytes of page and scripts (the API's JSON not counted).
//   node scripts/dashboard-load.mjs --state-dir DIR [--before CHECKOUT] [--rounds 7]
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: o } = parseArgs({ options: { 'state-dir': { type: 'string' }, before: { type: 'string' }, rounds: { type: 'string', default: '7' } } });
if (!o['state-dir']) throw new Error('--state-dir DIR: the state of a running mesh (e.g. mesh demo)');
const PAGES = { overview: 'main[data-page=overview] table', topology: 'main[data-page=topology] g.edge' };

function dashboard(root) {
  const p = spawn(process.execPath, [join(root, 'bin', 'mesh.js'), '--state-dir', o['state-dir'], 'dashboard', '--port', '0'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  return new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`${root}: no dashboard URL in 20 s`)), 20_000);
    p.stdout.on('data', (c) => {
      const m = /http:\/\/\S+/.exec((out += c));
      if (m) (clearTimeout(t), res({ p, url: m[0] }));
    });
  });
}

const sides = [{ name: 'this', root: ROOT }, ...(o.before ? [{ name: 'before', root: resolve(o.before) }] : [])];
for (const s of sides) Object.assign(s, await dashboard(s.root), { ms: {}, bytes: 0 });
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
try {
  for (let i = 0; i < Number(o.rounds); i++) {
    for (const s of sides) {
      for (const [name, ready] of Object.entries(PAGES)) {
        // A fresh context has an empty cache: its first tab loads cold, the second warm.
        const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
        await ctx.request.get(s.url, { maxRedirects: 0 }); // the session cookie, without loading the page
        for (const warm of [false, true]) {
          const t = await ctx.newPage();
          await t.goto(new URL(`/#/${name}`, s.url).href);
          const at = await t.waitForFunction((sel) => document.querySelector(sel) && performance.now(), ready, { polling: 'raf', timeout: 30_000 });
          (s.ms[`${name} ${warm ? 'warm' : 'cold'}`] ??= []).push(Number(await at.jsonValue()));
          // Scripts loaded and run: the page's own cost, before it waits for the API.
          (s.ms[`scripts ${warm ? 'warm' : 'cold'}`] ??= []).push(await t.evaluate(() => performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd));
          if (!warm) s.bytes = await t.evaluate(() => performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation')).filter((e) => !e.name.includes('/api/')).reduce((a, e) => a + e.decodedBodySize, 0));
          await t.close();
        }
        await ctx.close();
      }
    }
  }
} finally {
  await browser.close();
  for (const s of sides) s.p.kill();
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const s of sides) console.log(`${s.name.padEnd(6)} ${Object.entries(s.ms).map(([k, v]) => `${k} ${median(v).toFixed(0)} ms`).join(', ')}; page+scripts ${s.bytes} bytes (${s.root})`);
