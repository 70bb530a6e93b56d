// mesh dashboard in a real headless Chromium (Debian's, driven by playwright-core) against the bookinfo demo:
// every page renders live data. Screenshots go to $MESH_TEST_ARTIFACTS (kept) or a temp dir kept on failure.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { TestMesh, MESH_BIN, waitFor } from './support/mesh.js';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('mesh dashboard', { skip: !existsSync(CHROMIUM) && 'needs Debian chromium (.ci/run installs it)' }, () => {
  const m = new TestMesh();
  const shots = process.env.MESH_TEST_ARTIFACTS ?? mkdtempSync(join(tmpdir(), 'mesh-dashboard-shots-'));
  const profile = mkdtempSync(join(tmpdir(), 'mesh-chromium-'));
  let failed = false;
  let dash: ChildProcess;
  let url = '';
  let browser: BrowserContext;
  let page: Page;
  const errors: string[] = [];

  async function shot(name: string): Promise<void> {
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  }
  /** Opens a page of the dashboard and waits until its content shows `ready`. */
  async function open(hash: string, ready: string, name: string): Promise<void> {
    await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
    try {
      await page.waitForSelector(ready, { timeout: 30_000 });
    } finally {
      await shot(name);
    }
  }

  before(async () => {
    await m.install(['--scrape-interval', '1s']);
    // The sidecars export their spans to the control plane's own collector.
    const otlp = (JSON.parse(readFileSync(join(m.dir, 'control.json'), 'utf8')) as { otlp: string }).otlp;
    const r = await m.cli(['demo', '--ingress-port', '0', '--rate', '20', '--trace-collector', otlp], { timeoutMs: 90_000 });
    if (r.code !== 0) throw new Error(`demo failed: ${r.stderr}`);
    dash = spawn(process.execPath, [MESH_BIN, '--state-dir', m.dir, 'dashboard', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    dash.stdout!.on('data', (c) => (out += c));
    url = (await waitFor('the dashboard URL', () => /http:\/\/\S+/.exec(out)?.[0], 20_000))!;
    // A fresh profile each run (--user-data-dir, which playwright passes for a persistent context).
    browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: FLAGS, viewport: { width: 1280, height: 800 } });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on('console', (msg) => msg.type() === 'error' && errors.push(msg.text()));
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(url);
  });
  after(async () => {
    await browser?.close();
    dash?.kill('SIGTERM');
    await m.cleanup();
    rmSync(profile, { recursive: true, force: true });
    if (!failed && !process.env.MESH_TEST_ARTIFACTS) rmSync(shots, { recursive: true, force: true });
    else process.stderr.write(`dashboard screenshots: ${shots}\n`);
  });
  const track = (fn: () => Promise<void>) => async () => {
    try {
      await fn();
    } catch (err) {
      failed = true;
      throw err;
    }
  };

  it('refuses access without the token, and anything but GET', track(async () => {
    const base = new URL(url);
    for (const [path, method, status] of [['/', 'GET', 401], ['/api/stat?resource=deployment', 'GET', 401], ['/', 'POST', 405]] as const) {
      const r = await fetch(new URL(path, base.origin), { method, redirect: 'manual' });
      assert.equal(r.status, status, `${method} ${path}`);
    }
  }));

  it('overview: every bookinfo workload with success rate, rps and latency', track(async () => {
    await open('#/overview', 'main[data-page=overview] a[href="#/workload/default/reviews-v3"]', 'overview');
    await waitFor('rates on the overview', async () => /productpage-v1[\s\S]*?100\.00%[\s\S]*?rps/.test(await page.innerText('main')), 30_000, 500);
  }));

  it("topology: bookinfo's edges, with the identities proved", track(async () => {
    await open('#/topology', 'g.edge[data-from="default/productpage-v1"][data-to="default/reviews-v3"]', 'topology');
    for (const [from, to] of [['productpage-v1', 'details-v1'], ['productpage-v1', 'reviews-v1'], ['productpage-v1', 'reviews-v2'], ['reviews-v2', 'ratings-v1'], ['reviews-v3', 'ratings-v1']]) {
      const edge = await page.waitForSelector(`g.edge[data-from="default/${from}"][data-to="default/${to}"]`, { timeout: 20_000 });
      assert.equal(await edge.getAttribute('data-state'), 'observed');
      assert.match((await edge.textContent()) ?? '', /mTLS/);
    }
  }));

  it('routes: a route change shows in the configured and the observed split within seconds', track(async () => {
    assert.equal((await m.cli(['route', 'set', 'reviews', 'v2'])).code, 0);
    await open('#/routes', 'section.route[data-service="default/reviews"] .configured', 'routes-before');
    assert.match(await page.innerText('section.route[data-service="default/reviews"] .configured'), /v2=100%/);
    await waitFor('reviews to be observed on v2 only', async () => /v2=100%/.test(await page.innerText('section.route[data-service="default/reviews"] .observed')), 30_000, 500);
    const started = Date.now();
    assert.equal((await m.cli(['route', 'set', 'reviews', 'v1=80', 'v2=20'])).code, 0);
    await waitFor('the configured split', async () => /v1=80% v2=20%/.test(await page.innerText('section.route[data-service="default/reviews"] .configured')), 15_000, 250);
    await waitFor('v1 to carry most of the observed traffic', async () => {
      const m = /v1=(\d+)%/.exec(await page.innerText('section.route[data-service="default/reviews"] .observed'));
      return m && Number(m[1]) >= 50;
    }, 30_000, 250);
    process.stderr.write(`route change observed on the routes page after ${Date.now() - started} ms\n`);
    await shot('routes');
  }));

  it('workload: inbound and outbound edges, a latency chart and live calls from a tap', track(async () => {
    await open('#/workload/default/productpage-v1', '#tap tbody tr', 'workload');
    const text = await page.innerText('main');
    assert.match(text, /Inbound[\s\S]*Outbound[\s\S]*reviews-v/);
    assert.match(await page.innerText('#tap'), /GET\s+\S+\s+\/\S*\s+200/);
  }));

  it('policy: defaults, rules and allowed/denied counts per rule', track(async () => {
    assert.equal((await m.cli(['policy', 'default', 'deny'])).code, 0);
    // The page still loads (ingress → productpage); productpage's call to details is what default deny refuses.
    assert.equal((await m.cli(['policy', 'allow', '--from', 'ingress', '--to', 'productpage'])).code, 0);
    assert.equal((await m.cli(['policy', 'allow', '--from', 'productpage', '--to', 'reviews'])).code, 0);
    await open('#/policy', 'main[data-page=policy] table', 'policy');
    await waitFor('denials under default deny', async () => /details-v1\s+default deny\s+ns\/default\/sa\/productpage/.test(await page.innerText('main')), 30_000, 1000);
    assert.match(await page.innerText('main'), /productpage-v1\s+rule 1 of policy default\/default\s+ns\/default\/sa\/ingress/);
    await open('#/topology', 'g.edge[data-state="not-allowed"]', 'topology-policy');
    await open('#/policy', 'main[data-page=policy] table', 'policy');
    // Traces (below) need the whole chain again.
    assert.equal((await m.cli(['policy', 'default', 'allow'])).code, 0);
  }));

  it('identity & health: anchor and issuer expiry, proxies, mesh check', track(async () => {
    await open('#/identity', 'main[data-page=identity] table', 'identity');
    const text = await page.innerText('main');
    assert.match(text, /trust anchor[\s\S]*issuer/);
    assert.match(text, /productpage-v1/);
    await waitFor('check results', async () => /√/.test(await page.innerText('main')), 30_000, 1000);
    await shot('identity');
  }));

  it('traces: recent traces, and a waterfall across ingress, productpage, reviews and ratings', track(async () => {
    await open('#/traces', 'main[data-page=traces] table a', 'traces-list');
    const id = await waitFor('a trace that reaches ratings', async () => {
      const rows = await page.$$eval('main tr', (trs) => trs.map((tr) => tr.textContent ?? ''));
      const href = await page.$$eval('main tr', (trs) => trs.filter((tr) => /ratings/.test(tr.textContent ?? '')).map((tr) => tr.querySelector('a')?.getAttribute('href'))[0]);
      return rows.length && href;
    }, 30_000, 1000);
    await open(id!, '.waterfall .span', 'traces');
    const services = new Set(await page.$$eval('.waterfall .span', (xs) => xs.map((x) => x.getAttribute('data-service'))));
    for (const s of ['productpage', 'reviews', 'ratings']) assert.ok(services.has(s), [...services].join(' '));
    assert.ok(services.size >= 4, [...services].join(' '));
  }));

  it('logs no console errors', track(async () => {
    assert.deepEqual(errors, []);
  }));
});
