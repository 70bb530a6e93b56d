// mesh dashboard in a real headless Chromium (Debian's, driven by playwright-core) against the bookinfo demo:
// every page renders live data. Screenshots go to $MESH_TEST_ARTIFACTS (kept) or a temp dir kept on failure.
import { describe, it, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { NO_CHROMIUM, openPage } from './support/chromium.js';
import { TestMesh, MESH_BIN, waitFor } from './support/mesh.js';

// The browser's globals, for the functions the tests run in the page (this project's tsconfig has no DOM types).
declare const document: any;
declare function getComputedStyle(el: unknown): any;


describe('mesh dashboard', { skip: NO_CHROMIUM }, () => {
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

  /** A uPlot chart's point count and how many of its canvas pixels are near `color` (a CSS colour, or a custom property). */
  async function chartInk(selector: string, color: string): Promise<{ points: number; inked: number }> {
    return page.$eval(selector, (el: any, color: string) => {
      const probe = document.createElement('span');
      probe.style.color = color.startsWith('--') ? `var(${color})` : color;
      document.body.append(probe);
      const [r, g, b] = getComputedStyle(probe).color.match(/\d+/g)!.map(Number);
      probe.remove();
      const canvas = el.querySelector('.uplot canvas');
      if (!canvas) return { points: 0, inked: 0 };
      const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let inked = 0;
      for (let i = 0; i < px.length; i += 4) if (px[i + 3] > 200 && Math.abs(px[i] - r) + Math.abs(px[i + 1] - g) + Math.abs(px[i + 2] - b) < 60) inked++;
      return { points: Number(el.dataset.points), inked };
    }, color);
  }
  /** Waits until a chart holds at least two points and has drawn a series in `color`. */
  async function chartDrawn(selector: string, color: string): Promise<void> {
    await waitFor(`${selector} to draw its data`, async () => {
      const c = await chartInk(selector, color).catch(() => undefined);
      return c && c.points >= 2 && c.inked > 10;
    }, 30_000, 500);
  }

  before(async () => {
    await m.install(['--scrape-interval', '1s']);
    // The sidecars export their spans to the control plane's own collector.
    const otlp = (JSON.parse(readFileSync(join(m.dir, 'control.json'), 'utf8')) as { otlp: string }).otlp;
    const r = await m.cli(['demo', '--ingress-port', '0', '--rate', '20', '--trace-collector', otlp], { timeoutMs: 90_000 });
    if (r.code !== 0) throw new Error(`demo failed: ${r.stderr}`);
    // A workload nobody calls and that calls nobody: on the overview, not in the topology.
    await m.run('idle');
    // A client of details beside productpage: dagre puts it in productpage's column, where the edges' old curves
    // (not dagre's route) cut its box.
    const caller = `const [h, p] = process.env.MESH_OUTBOUND.split(':'); const http = require('node:http');
      setInterval(() => http.get({ host: h, port: p, path: '/details/0', headers: { host: 'details:9080' } }, (r) => r.resume()).on('error', () => {}), 250);`;
    const c = await m.cli(['run', '-d', '--name', 'mobile', '--', process.execPath, '-e', caller]);
    if (c.code !== 0) throw new Error(`run mobile failed: ${c.stderr}`);
    dash = spawn(process.execPath, [MESH_BIN, '--state-dir', m.dir, 'dashboard', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    dash.stdout!.on('data', (c) => (out += c));
    url = (await waitFor('the dashboard URL', () => /http:\/\/\S+/.exec(out)?.[0], 20_000))!;
    // A fresh profile each run (--user-data-dir, which playwright passes for a persistent context).
    ({ browser, page } = await openPage(profile, url, errors));
  });
  after(async () => {
    await browser?.close();
    dash?.kill('SIGTERM');
    await m.cleanup();
    rmSync(profile, { recursive: true, force: true });
    if (!failed && !process.env.MESH_TEST_ARTIFACTS) rmSync(shots, { recursive: true, force: true });
    else process.stderr.write(`dashboard screenshots: ${shots}\n`);
  });
  const track = (fn: (t: TestContext) => Promise<void>) => async (t: TestContext) => {
    try {
      await fn(t);
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
    // Each workload's sparkline is a uPlot chart drawing its rps in the accent colour.
    await chartDrawn('[data-chart="spark:default/productpage-v1"]', '--acc');
    await page.waitForSelector('main[data-page=overview] a[href^="#/workload/default/idle"]', { timeout: 30_000 });
  }));

  it('loads a page with its charts and graph quickly (figures on stderr)', track(async () => {
    // A fresh tab each time (the session cookie is the context's): navigation to first drawn content, median of 3.
    const times: Record<string, number[]> = { overview: [], topology: [] };
    let bytes = 0;
    for (let i = 0; i < 3; i++) {
      for (const [name, ready] of [['overview', 'main[data-page=overview] table'], ['topology', 'main[data-page=topology] g.edge']] as const) {
        const tab = await browser.newPage();
        tab.on('pageerror', (err) => errors.push(err.message));
        await tab.goto(new URL(`/#/${name}`, url).href);
        // A function, not a string: the page's CSP forbids eval.
        const ms = await tab.waitForFunction((sel) => document.querySelector(sel) && performance.now(), ready, { polling: 'raf', timeout: 30_000 });
        times[name].push(Number(await ms.jsonValue()));
        bytes = Number(await tab.evaluate(`performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))
          .filter((e) => !/\\/api\\//.test(e.name)).reduce((a, e) => a + e.encodedBodySize, 0)`));
        await tab.close();
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1];
    process.stderr.write(`dashboard load: overview ${median(times.overview).toFixed(0)} ms, topology ${median(times.topology).toFixed(0)} ms (first drawn content, median of 3); page+scripts ${bytes} bytes\n`);
  }));

  it("topology: bookinfo's edges, with the identities proved", track(async () => {
    await open('#/topology', 'g.edge[data-from="default/productpage-v1"][data-to="default/reviews-v3"]', 'topology');
    for (const [from, to] of [['mobile-v1', 'details-v1'], ['productpage-v1', 'details-v1'], ['productpage-v1', 'reviews-v1'], ['productpage-v1', 'reviews-v2'], ['reviews-v2', 'ratings-v1'], ['reviews-v3', 'ratings-v1']]) {
      const edge = await page.waitForSelector(`g.edge[data-from="default/${from}"][data-to="default/${to}"]`, { timeout: 20_000 });
      assert.equal(await edge.getAttribute('data-state'), 'observed');
      assert.match((await edge.textContent()) ?? '', /mTLS/);
      assert.ok(await edge.$('use.lock'), `a lock on ${from} → ${to}`);
    }
    // dagre's layout: callers left of callees, no two nodes overlap, each edge runs from its source's box to its target's.
    await shot('topology');
    const boxes = new Map((await page.$$eval('a.node', (as: any[]) => as.map((a) => {
      const r = a.querySelector('rect');
      return [a.dataset.id, { x: +r.getAttribute('x'), y: +r.getAttribute('y'), w: +r.getAttribute('width'), h: +r.getAttribute('height') }];
    }))) as [string, { x: number; y: number; w: number; h: number }][]);
    const box = (id: string) => boxes.get(`default/${id}`) ?? assert.fail(`no node ${id}: ${[...boxes.keys()].join(' ')}`);
    for (const v of ['reviews-v1', 'reviews-v2', 'reviews-v3', 'details-v1']) assert.ok(box('productpage-v1').x + box('productpage-v1').w < box(v).x, `productpage-v1 left of ${v}`);
    for (const v of ['reviews-v2', 'reviews-v3']) assert.ok(box(v).x + box(v).w < box('ratings-v1').x, `${v} left of ratings-v1`);
    const list = [...boxes.values()];
    for (let i = 0; i < list.length; i++) for (let j = i + 1; j < list.length; j++) {
      const [a, b] = [list[i], list[j]];
      assert.ok(a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y, `nodes ${[...boxes.keys()][i]} and ${[...boxes.keys()][j]} overlap`);
    }
    const near = (p: number[], b: { x: number; y: number; w: number; h: number }) => p[0] >= b.x - 3 && p[0] <= b.x + b.w + 3 && p[1] >= b.y - 3 && p[1] <= b.y + b.h + 3;
    // Each edge runs along dagre's route: sampled along its path, it enters no box but its two ends'.
    const crossings = await page.$$eval('g.edge', (gs: any[], bx: [string, { x: number; y: number; w: number; h: number }][]) => {
      const out: string[] = [];
      for (const g of gs) {
        const path = g.querySelector('path');
        const len = path.getTotalLength();
        const hit = new Set<string>();
        for (let s = 0; s <= len; s += 2) {
          const p = path.getPointAtLength(s);
          for (const [id, b] of bx) {
            if (id === g.dataset.from || id === g.dataset.to || hit.has(id)) continue;
            if (p.x > b.x + 1 && p.x < b.x + b.w - 1 && p.y > b.y + 1 && p.y < b.y + b.h - 1) (hit.add(id), out.push(`${g.dataset.from} → ${g.dataset.to} crosses ${id} at ${p.x.toFixed(0)},${p.y.toFixed(0)}`));
          }
        }
      }
      return out;
    }, [...boxes]);
    assert.deepEqual(crossings, [], `edges drawn through other nodes' boxes (screenshot topology.png)`);
    // ... and joins its two boxes: its path starts on its source's box and ends on its target's.
    for (const e of await page.$$eval('g.edge', (gs: any[]) => gs.map((g) => {
      const path = g.querySelector('path');
      const [a, z] = [path.getPointAtLength(0), path.getPointAtLength(path.getTotalLength())];
      return { from: g.dataset.from, to: g.dataset.to, a: [a.x, a.y], z: [z.x, z.y] };
    }))) assert.ok(near(e.a, boxes.get(e.from)!) && near(e.z, boxes.get(e.to)!), `edge ${e.from} → ${e.to} joins its nodes (${e.a} … ${e.z})`);
    // A workload without traffic or an allowed edge is on the overview only.
    assert.deepEqual([...boxes.keys()].filter((id) => /idle/.test(id)), [], 'the idle workload has no node in the topology');
    for (const e of await page.$$eval('g.edge[data-state=observed]', (gs: any[]) => gs.map((g) => ({ from: g.dataset.from, to: g.dataset.to, d: g.querySelector('path').getAttribute('d') })))) {
      const pts = [...(e.d as string).matchAll(/(-?[\d.]+),(-?[\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
      assert.ok(near(pts[0], boxes.get(e.from)!) && near(pts[pts.length - 1], boxes.get(e.to)!), `edge ${e.from} → ${e.to} (${e.d}) joins its nodes`);
    }
  }));

  it('keyboard reaches a node of the graph and opens its page; light and dark are readable', track(async () => {
    await open('#/topology', 'a.node[data-id="default/reviews-v2"]', 'topology-keyboard');
    await page.focus('main');
    const focused = await waitFor('Tab to reach a node of the graph', async () => {
      await page.keyboard.press('Tab');
      return page.evaluate('document.activeElement.matches("a.node") && document.activeElement.dataset.id');
    }, 10_000, 0);
    await page.keyboard.press('Enter');
    await page.waitForSelector(`main[data-page=workload] h2`, { timeout: 10_000 });
    assert.match(await page.evaluate('location.hash') as string, new RegExp(`#/workload/${focused}$`));
    const lum = (rgb: string) => {
      const [r, g, b] = rgb.match(/[\d.]+/g)!.slice(0, 3).map((v) => Number(v) / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const contrast = (a: string, b: string) => (Math.max(lum(a), lum(b)) + 0.05) / (Math.min(lum(a), lum(b)) + 0.05);
    for (const scheme of ['dark', 'light'] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      await open('#/topology', 'a.node text', `topology-${scheme}`);
      // Read again should a refresh be redrawing the graph at that moment (every value an rgb() colour).
      const c = (await waitFor(`the ${scheme} colours`, async () => {
        const v = await page.$eval('a.node', (a: any) => {
          const style = (el: any) => getComputedStyle(el);
          return { fg: style(document.body).color, bg: style(document.body).backgroundColor, label: style(a.querySelector('text')).fill, card: style(a.querySelector('rect')).fill, mute: style(a.querySelector('text.mute')).fill };
        }).catch(() => undefined);
        return v && Object.values(v).every((x) => /^rgba?\(/.test(x)) ? v : undefined;
      }, 10_000, 200))!;
      assert.ok(lum(c.bg) < 0.1 === (scheme === 'dark'), `${scheme} background ${c.bg}`);
      for (const [what, fg, bg] of [['text', c.fg, c.bg], ['node label', c.label, c.card], ['node figures', c.mute, c.card]]) assert.ok(contrast(fg, bg) >= 4.5, `${scheme}: ${what} ${fg} on ${bg} (contrast ${contrast(fg, bg).toFixed(1)})`);
      // The charts are redrawn in the theme's colours.
      await open('#/overview', '[data-chart="spark:default/productpage-v1"] canvas', `overview-${scheme}`);
      await chartDrawn('[data-chart="spark:default/productpage-v1"]', '--acc');
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
    // The observed split over time is a uPlot chart whose legend names the versions.
    await chartDrawn('section.route[data-service="default/reviews"] [data-chart]', '#0969da');
    assert.match(await page.innerText('section.route[data-service="default/reviews"] .u-legend'), /v1[\s\S]*v2/);
    await shot('routes');
  }));

  it('workload: inbound and outbound edges, a latency chart and live calls from a tap', track(async () => {
    await open('#/workload/default/productpage-v1', '#tap tbody tr', 'workload');
    const text = await page.innerText('main');
    assert.match(text, /Inbound[\s\S]*Outbound[\s\S]*reviews-v/);
    assert.match(await page.innerText('#tap'), /GET\s+\S+\s+\/\S*\s+200/);
    await chartDrawn('[data-chart="latency:default/productpage-v1"]', '#0969da');
    assert.match(await page.innerText('[data-chart="latency:default/productpage-v1"] .u-legend'), /p50[\s\S]*p95[\s\S]*p99/);
  }));

  it('policy: defaults, rules and allowed/denied counts per rule', track(async (t) => {
    assert.equal((await m.cli(['policy', 'default', 'deny'])).code, 0);
    // Traces (below) need the whole chain again, however this ends.
    t.after(async () => void (await m.cli(['policy', 'default', 'allow'])));
    // The page still loads (ingress → productpage); productpage's call to details is what default deny refuses.
    assert.equal((await m.cli(['policy', 'allow', '--from', 'ingress', '--to', 'productpage'])).code, 0);
    assert.equal((await m.cli(['policy', 'allow', '--from', 'productpage', '--to', 'reviews'])).code, 0);
    await open('#/policy', 'main[data-page=policy] table', 'policy');
    // details has two callers (mobile too), listed in either order.
    await waitFor('denials under default deny', async () => /details-v1\s+default deny\s+[^\n]*ns\/default\/sa\/productpage/.test(await page.innerText('main')), 30_000, 1000);
    assert.match(await page.innerText('main'), /productpage-v1\s+rule 1 of policy default\/default\s+ns\/default\/sa\/ingress/);
    // The rule's success and latency, measured per rule by the sidecar (an estimate would be marked ~).
    await waitFor('the rule\'s measured latency', async () => /productpage-v1\s+rule 1 of policy default\/default\s+ns\/default\/sa\/ingress\s+[\d.]+rps\s+[\d.]+rps\s+[\d.]+%\s+[\d.]+ms\s+[\d.]+ms/.test(await page.innerText('main')), 30_000, 1000);
    await open('#/topology', 'g.edge[data-state="not-allowed"]', 'topology-policy');
    await open('#/policy', 'main[data-page=policy] table', 'policy');
  }));

  it('identity & health: anchor and issuer expiry, proxies, mesh check', track(async () => {
    await open('#/identity', 'main[data-page=identity] table', 'identity');
    const text = await page.innerText('main');
    assert.match(text, /trust anchor[\s\S]*issuer/);
    assert.match(text, /productpage-v1/);
    // Time left in the unit that suits it: a year-long anchor in days, a 24 h workload certificate in hours.
    assert.match(text, /trust anchor[^\n]*UTC \(in 36[56] days\)/);
    assert.match(text, /productpage-v1[^\n]*UTC \(in (1?\d|2[0-4]) h\)/);
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
