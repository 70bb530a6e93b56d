// mesh on a real Kubernetes: the single-node cluster of ../shared/kube (kube-local), the mesh image built from
// this checkout without Docker, and the CLI as a user runs it. One story in order (each step needs the last):
// install, bookinfo with Istio-style ServiceAccounts, mTLS through both sidecars, routing, stat/edges/check,
// policy with a webhook-injected Job, the data plane without its control plane, certificate renewal, the
// installed identity kept by a re-render, uninstall. Skips, saying why, without kube-local or root; removes all
// it made and stops the cluster at the end (MESH_KUBE_KEEP_UP=1 leaves it up between runs while developing).
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import type { BrowserContext } from 'playwright-core';
import { NO_CHROMIUM, openPage } from './support/chromium.js';
import { assertOneLineError, mesh, MESH_BIN, waitFor, type CliResult } from './support/mesh.js';
import { caFromPem, clientCert } from './support/kube/tls.js';
import { httpGet, podIP, podLog, pods, realCluster, scale, servedCert, type RealCluster } from './support/kube-real.js';
import { removeDemo, DEMO_NAMESPACE } from '../src/platform/kubernetes/demo.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const NS = DEMO_NAMESPACE;
/** The test's own namespace, labelled for the injector webhook. */
const HOOK_NS = 'mesh-real';
/** Short workload certificates: every proxy (and the control plane's API) renews several times during the suite. */
const CERT_LIFETIME_S = 120;

describe('mesh on a real Kubernetes (kube-local)', { concurrency: false }, () => {
  let c: RealCluster | undefined;
  let skip = '';
  let home: string;
  const started = Date.now();
  const k = (args: string[], timeoutMs = 120_000): Promise<CliResult> =>
    mesh(['--platform', 'kubernetes', '--kubeconfig', c!.kubeconfig, ...args], { env: { HOME: home, KUBECONFIG: '', MESH_PLATFORM: '' }, timeoutMs });
  const ok = async (args: string[], timeoutMs?: number): Promise<CliResult> => {
    const r = await k(args, timeoutMs);
    assert.equal(r.code, 0, `mesh ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r;
  };
  const json = async <T = Obj>(args: string[]): Promise<T> => JSON.parse((await ok([...args, '-o', 'json'])).stdout) as T;
  /** Skips a step when the cluster is not there; the reason is the suite's. */
  const need = (t: TestContext): boolean => {
    if (c) return true;
    t.skip(skip);
    return false;
  };
  // The product page's pod IP, looked up once (its pod lives as long as the sample).
  let productpage: Promise<string> | undefined;
  const page = async (query = ''): Promise<string> => {
    const ip = await (productpage ??= podIP(c!.kube, NS, 'app=productpage'));
    const r = await httpGet(ip, 9080, `/api/v1/products/0${query}`);
    if (r.status !== 200) return `HTTP ${r.status}`;
    const a = JSON.parse(r.body) as { reviews?: { podname?: string; error?: string } };
    return a.reviews?.podname ?? `error: ${a.reviews?.error}`;
  };
  /** Versions of `n` pages fetched 8 at a time. */
  const pages = async (n: number, query = ''): Promise<Map<string, number>> => {
    const counts = new Map<string, number>();
    let left = n;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (left-- > 0) {
        const v = await page(query);
        counts.set(v, (counts.get(v) ?? 0) + 1);
      }
    }));
    return counts;
  };
  let firstCert: { serial: string } | undefined;

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'mesh-kube-real-'));
    const r = await realCluster();
    if ('skip' in r) skip = r.skip;
    else c = r;
  });

  after(async () => {
    rmSync(home, { recursive: true, force: true });
    if (!c) return;
    // Whatever a failed step left: the sample, the test namespace, the mesh and its CRDs.
    await removeDemo(c.kube, { wait: false }).catch(() => undefined);
    await c.kube.delete({ apiVersion: 'v1', kind: 'Namespace', name: HOOK_NS }).catch(() => undefined);
    await k(['uninstall', '--apply', '--crds']).catch(() => undefined);
    if (!process.env.MESH_KUBE_KEEP_UP) await c.down();
    console.log(`# kube-real: ${((Date.now() - started) / 1000).toFixed(0)} s in all (up ${c.timings.up.toFixed(0)} s, image ${c.timings.image.toFixed(0)} s)`);
  });

  it('installs the CRDs and the control plane (--apply), and a second --apply changes nothing', { timeout: 300_000 }, async (t) => {
    if (!need(t)) return;
    assert.match((await ok(['install', '--crds', '--apply'])).stdout, /mesh CRDs are installed/);
    const first = await ok(['install', '--apply', '--cert-lifetime', `${CERT_LIFETIME_S}s`, '--wait', '3m'], 240_000);
    assert.match(first.stderr, /Control plane is ready/);
    const again = await ok(['install', '--apply', '--cert-lifetime', `${CERT_LIFETIME_S}s`, '--wait', '3m'], 240_000);
    assert.match(again.stderr, /Applied \d+ objects \(0 changed\)/);
    const control = (await pods(c!.kube, 'mesh-system', 'app.kubernetes.io/component=control'))[0]!;
    assert.equal(control.spec.containers[0].image, c!.image, 'the control plane runs the image built from this checkout');
  });

  it('runs bookinfo meshed in one command (mesh demo), with Istio-style ServiceAccounts, lists it (mesh workloads), and serves the product page through the mesh', { timeout: 240_000 }, async (t) => {
    if (!need(t)) return;
    const demo = await ok(['demo', '--no-traffic'], 360_000);
    assert.match(demo.stderr, /The product page answers through the mesh \(reviews-v[123] served it/);
    assert.match(demo.stdout, /kubectl --kubeconfig \S+ -n bookinfo port-forward svc\/productpage 9080:9080\n\s+http:\/\/localhost:9080\/productpage/);
    const listed = await json<{ records: Obj[] } | Obj[]>(['workloads']);
    const records = (Array.isArray(listed) ? listed : listed.records).filter((r) => r.namespace === NS);
    assert.deepEqual(records.map((r) => `${r.workload.name} ${r.services.join()} ${r.version} ${r.proxy}`).sort(), [
      'details-v1 details v1 ready', 'productpage-v1 productpage v1 ready', 'ratings-v1 ratings v1 ready',
      'reviews-v1 reviews v1 ready', 'reviews-v2 reviews v2 ready', 'reviews-v3 reviews v3 ready',
    ]);
    for (const p of await pods(c!.kube, NS)) {
      assert.equal(p.spec.serviceAccountName, `bookinfo-${p.metadata.labels.app}`);
      assert.ok(p.spec.initContainers.some((x: Obj) => x.name === 'mesh-proxy' && x.restartPolicy === 'Always'), `${p.metadata.name} has the native sidecar`);
    }
    const ip = await podIP(c!.kube, NS, 'app=reviews,version=v1');
    firstCert = await servedCert(ip, 4143);
    assert.equal(firstCert && (await servedCert(ip, 4143)).uri, `URI:spiffe://cluster.local/ns/${NS}/sa/bookinfo-reviews`);
  });

  it('crosses both sidecars over mutual TLS (tls="true" on the client and the server side)', { timeout: 60_000 }, async (t) => {
    if (!need(t)) return;
    for (let i = 0; i < 5; i++) assert.match(await page(), /^reviews-v[123]$/);
    const metrics = async (selector: string) => (await httpGet(await podIP(c!.kube, NS, selector), 4191, '/metrics')).body;
    const out = (await metrics('app=productpage')).split('\n').filter((l) => l.startsWith('request_total{') && l.includes('direction="outbound"') && l.includes('dst_service="reviews"'));
    assert.ok(out.length, 'productpage called reviews');
    for (const l of out) {
      assert.match(l, /tls="true"/);
      assert.match(l, new RegExp(`server_id="spiffe://cluster.local/ns/${NS}/sa/bookinfo-reviews"`));
    }
    const inbound = (await Promise.all(['v1', 'v2', 'v3'].map((v) => metrics(`app=reviews,version=${v}`)))).join('\n').split('\n')
      .filter((l) => l.startsWith('request_total{') && l.includes('direction="inbound"') && l.includes('/sa/bookinfo-productpage"'));
    assert.ok(inbound.length, 'reviews saw productpage by its identity');
    for (const l of inbound) assert.match(l, /tls="true"/);
  });

  it('the sidecars send their spans to mesh-control by default: a page\'s trace across productpage, reviews and ratings, through mesh dashboard\'s port-forward', { timeout: 120_000 }, async (t) => {
    if (!need(t)) return;
    const dash = spawn(process.execPath, [MESH_BIN, '--platform', 'kubernetes', '--kubeconfig', c!.kubeconfig, 'dashboard', '--port', '0'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: home, KUBECONFIG: '', MESH_PLATFORM: '' } });
    let out = '';
    dash.stdout!.on('data', (x) => (out += x));
    dash.stderr!.on('data', (x) => (out += x));
    try {
      const url = new URL((await waitFor('the dashboard URL', () => /http:\/\/127\.0\.0\.1:\d+\/\?token=\S+/.exec(out)?.[0], 60_000, 100))!);
      const cookie = (await fetch(url, { redirect: 'manual' })).headers.get('set-cookie')!.split(';')[0]!;
      const api = async <T>(path: string) => (await (await fetch(new URL(path, url.origin), { headers: { cookie } })).json()) as T;
      const trace = await waitFor('a trace through productpage, reviews and ratings', async () => {
        await pages(8);
        const list = await api<{ traces: { traceId: string; services: string[] }[] }>('/api/traces');
        return list.traces.find((x) => ['productpage', 'reviews', 'ratings'].every((s) => x.services.some((v) => v.endsWith(s))));
      }, 90_000, 500);
      const spans = (await api<{ spans: { service: string; name: string }[] }>(`/api/traces/${trace!.traceId}`)).spans;
      assert.ok(spans.length >= 4, JSON.stringify(spans));
    } catch (e) {
      throw new Error(`${(e as Error).message}; mesh dashboard said: ${out}`);
    } finally {
      dash.kill('SIGTERM');
    }
  });

  it('mesh tap streams bookinfo\'s requests to the kubeconfig\'s client-certificate admin, and mesh dashboard in Chromium shows the overview\'s figures, the topology\'s edges and live calls', { timeout: 180_000 }, async (t) => {
    if (!need(t)) return;
    // Traffic while we look: three pages at a time until the step ends.
    let loading = true;
    const load = (async () => {
      while (loading) await pages(3).catch(() => undefined);
    })();
    const profile = mkdtempSync(join(tmpdir(), 'mesh-kube-real-chromium-'));
    const shots = process.env.MESH_TEST_ARTIFACTS ?? mkdtempSync(join(tmpdir(), 'mesh-kube-real-shots-'));
    let dash: ChildProcess | undefined;
    let browser: BrowserContext | undefined;
    let out = '';
    let ok = false;
    try {
      // The admin of kube-local's kubeconfig has a client certificate and no token: mesh-control verifies it.
      assert.match(readFileSync(c!.kubeconfig, 'utf8'), /client-certificate/);
      const tap = await k(['tap', 'deploy/productpage-v1', '-n', NS, '--count', '6', '--duration', '60s'], 90_000);
      assert.equal(tap.code, 0, tap.stderr);
      const lines = tap.stdout.trim().split('\n');
      assert.match(lines[0]!, new RegExp(`^req id=productpage-v1-\\S+ proxy=(in|out) src=\\S+ dst=\\S+ tls=(true|false) :method=GET :authority=\\S+ :path=/`), tap.stdout);
      assert.ok(lines.some((l) => /^rsp .* :status=200 latency=\d+µs/.test(l)), tap.stdout);
      assert.ok(lines.some((l) => l.includes(`src=ns/${NS}/sa/bookinfo-productpage`) && l.includes('tls=true')), `an outbound call with its mTLS identity: ${tap.stdout}`);

      if (NO_CHROMIUM) return t.diagnostic(`dashboard in Chromium skipped: ${NO_CHROMIUM}`);
      dash = spawn(process.execPath, [MESH_BIN, '--platform', 'kubernetes', '--kubeconfig', c!.kubeconfig, 'dashboard', '--port', '0'],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: home, KUBECONFIG: '', MESH_PLATFORM: '' } });
      dash.stdout!.on('data', (x) => (out += x));
      dash.stderr!.on('data', (x) => (out += x));
      const url = (await waitFor('the dashboard URL', () => /http:\/\/127\.0\.0\.1:\d+\/\?token=\S+/.exec(out)?.[0], 60_000, 100))!;
      const errors: string[] = [];
      const opened = await openPage(profile, url, errors);
      browser = opened.browser;
      const page = opened.page;
      const open = async (hash: string, ready: string, name: string) => {
        await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
        try {
          await page.waitForSelector(ready, { timeout: 60_000 });
        } finally {
          mkdirSync(shots, { recursive: true });
          await page.screenshot({ path: join(shots, `kube-real-${name}.png`), fullPage: true });
        }
      };
      // Overview: each of bookinfo's workloads meshed, with a success rate, a non-zero rate and latencies.
      const apps = ['details-v1', 'productpage-v1', 'ratings-v1', 'reviews-v1', 'reviews-v2', 'reviews-v3'];
      await open('#/overview', `main[data-page=overview] a[href="#/workload/${NS}/reviews-v3"]`, 'overview');
      const rows = await waitFor('real figures for every bookinfo workload', async () => {
        const text = await page.$$eval('main[data-page=overview] tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
        const mine = apps.map((a) => text.find((r) => r[0] === a));
        return mine.every((r) => r && r[1] === '1/1' && /^\d+\.\d+%$/.test(r[2]!) && Number.parseFloat(r[3]!) > 0 && /ms$/.test(r[4]!)) ? mine : undefined;
      }, 60_000, 1000);
      t.diagnostic(`overview: ${rows!.map((r) => r!.slice(0, 5).join(' ')).join('; ')}`);
      // Each row's sparkline: a uPlot chart once two refreshes are in.
      await page.waitForFunction((sel: string) => {
        const el = (globalThis as unknown as { document: { querySelector(s: string): { getAttribute(a: string): string | null; querySelector(s: string): unknown } | null } }).document.querySelector(sel);
        return !!el && Number(el.getAttribute('data-points')) >= 2 && !!el.querySelector('canvas');
      }, `[data-chart="spark:${NS}/productpage-v1"]`, { timeout: 30_000 });
      await page.screenshot({ path: join(shots, 'kube-real-overview.png'), fullPage: true });
      // Topology: bookinfo's edges, observed, over mTLS.
      await open('#/topology', `g.edge[data-from="${NS}/productpage-v1"][data-to="${NS}/details-v1"]`, 'topology');
      for (const [from, to] of [['productpage-v1', 'details-v1'], ['productpage-v1', 'reviews-v1'], ['productpage-v1', 'reviews-v2'], ['productpage-v1', 'reviews-v3'], ['reviews-v2', 'ratings-v1'], ['reviews-v3', 'ratings-v1']]) {
        const edge = await page.waitForSelector(`g.edge[data-from="${NS}/${from}"][data-to="${NS}/${to}"]`, { timeout: 30_000 });
        assert.equal(await edge.getAttribute('data-state'), 'observed', `${from} → ${to}`);
        assert.ok(await edge.$('use.lock'), `a lock on ${from} → ${to}`);
      }
      // The workload page's live calls: tap through the dashboard's forward, as the same certificate user.
      await open(`#/workload/${NS}/productpage-v1`, '#tap tbody tr', 'workload');
      assert.match(await page.innerText('#tap'), /GET\s+\S+\s+\/\S*\s+200/);
      assert.deepEqual(errors, []);
      ok = true;
    } catch (e) {
      throw new Error(`${(e as Error).message}; mesh dashboard said: ${out}`);
    } finally {
      loading = false;
      await load;
      await browser?.close();
      dash?.kill('SIGTERM');
      rmSync(profile, { recursive: true, force: true });
      if (ok && !process.env.MESH_TEST_ARTIFACTS) rmSync(shots, { recursive: true, force: true });
      else process.stderr.write(`kube-real dashboard screenshots: ${shots}\n`);
    }
  });

  it('a client-certificate user RBAC does not let tap is refused by mesh-control\'s SubjectAccessReview, and the command it prints lets them tap', { timeout: 120_000 }, async (t) => {
    if (!need(t)) return;
    const kube = c!.kube;
    // A user of the cluster's own client CA (kube-local keeps it beside the kubeconfig), in group mesh-real-viewers.
    const pki = join(dirname(c!.kubeconfig), 'pki');
    if (!existsSync(join(pki, 'ca.key'))) return t.skip(`no cluster CA key at ${pki} to make a user with`);
    const user = 'mesh-real-viewer';
    const cred = clientCert(user, ['mesh-real-viewers'], { ca: caFromPem(readFileSync(join(pki, 'ca.crt'), 'utf8'), readFileSync(join(pki, 'ca.key'), 'utf8')) });
    const config = parse(readFileSync(c!.kubeconfig, 'utf8')) as Obj;
    config.users[0].user = { 'client-certificate-data': Buffer.from(cred.certPem).toString('base64'), 'client-key-data': Buffer.from(cred.keyPem).toString('base64') };
    const kubeconfig = join(home, 'viewer.kubeconfig');
    writeFileSync(kubeconfig, stringify(config), { mode: 0o600 });
    const viewer = (args: string[]) => mesh(['--platform', 'kubernetes', '--kubeconfig', kubeconfig, ...args], { env: { HOME: home, KUBECONFIG: '', MESH_PLATFORM: '' }, timeoutMs: 60_000 });
    // What mesh tap needs of the API server, granted to the group (the API server reads O as groups too).
    const rbac = 'rbac.authorization.k8s.io/v1';
    await kube.apply({ apiVersion: rbac, kind: 'Role', metadata: { name: 'mesh-real-forward', namespace: 'mesh-system' }, rules: [
      { apiGroups: [''], resources: ['pods', 'configmaps'], verbs: ['get', 'list'] }, { apiGroups: [''], resources: ['pods/portforward'], verbs: ['get', 'create'] },
    ] } as never);
    await kube.apply({ apiVersion: rbac, kind: 'RoleBinding', metadata: { name: 'mesh-real-forward', namespace: 'mesh-system' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'mesh-real-forward' }, subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'mesh-real-viewers' }] } as never);
    let loading = true;
    const load = (async () => {
      while (loading) await pages(2).catch(() => undefined);
    })();
    try {
      let last = '';
      const denied = await waitFor('mesh-control\'s refusal (the forward allowed once RBAC caught up)', async () => {
        const r = await viewer(['tap', 'deploy/reviews-v1', '-n', NS, '--duration', '5s']);
        last = r.stderr;
        return /may not tap/.test(r.stderr) ? r : undefined;
      }, 30_000, 500).catch((e: Error) => assert.fail(`${e.message}: mesh tap said ${last}`));
      assertOneLineError(denied!, new RegExp(`${user} may not tap deploy/reviews-v1 in namespace ${NS}: RBAC needs verb watch on deployments/tap in API group tap\\.mesh\\.io`));
      const hint = /kubectl create rolebinding .*?--user '[^']+'/.exec(denied!.stderr)?.[0];
      assert.equal(hint, `kubectl create rolebinding ${user}-tap -n ${NS} --clusterrole mesh:tap-admin --user '${user}'`, denied!.stderr);
      // The printed command, as a user would paste it (with the admin's kubeconfig); without kubectl, its object.
      const kubectl = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
      if (kubectl) {
        const made = spawnSync('sh', ['-c', hint!], { env: { ...process.env, KUBECONFIG: c!.kubeconfig }, encoding: 'utf8' });
        assert.equal(made.status, 0, made.stderr);
      } else {
        t.diagnostic('kubectl absent: the hint\'s RoleBinding is made through the API');
        await kube.apply({ apiVersion: rbac, kind: 'RoleBinding', metadata: { name: `${user}-tap`, namespace: NS },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'mesh:tap-admin' }, subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }] } as never);
      }
      const tap = await waitFor('the tap allowed', async () => {
        const r = await viewer(['tap', 'deploy/reviews-v1', '-n', NS, '--count', '2', '--duration', '30s']);
        return r.code === 0 ? r : undefined;
      }, 60_000, 1000);
      assert.match(tap!.stdout, /^req id=reviews-v1-\S+ proxy=in src=ns\/bookinfo\/sa\/bookinfo-productpage .* tls=true :method=GET/m);
    } finally {
      loading = false;
      await load;
      await kube.delete({ apiVersion: rbac, kind: 'RoleBinding', name: `${user}-tap`, namespace: NS }).catch(() => undefined);
      await kube.delete({ apiVersion: rbac, kind: 'RoleBinding', name: 'mesh-real-forward', namespace: 'mesh-system' }).catch(() => undefined);
      await kube.delete({ apiVersion: rbac, kind: 'Role', name: 'mesh-real-forward', namespace: 'mesh-system' }).catch(() => undefined);
    }
  });

  it('splits reviews 80/20 within 5 points over 400 requests, and sends jason to v3', { timeout: 180_000 }, async (t) => {
    if (!need(t)) return;
    await ok(['route', 'set', 'reviews', 'v1=80', 'v2=20', '-n', NS]);
    // In effect once productpage's proxy has the route: no v3 for 40 pages in a row.
    await waitFor('the 80/20 route in effect', async () => !(await pages(40)).has('reviews-v3'), 60_000, 200);
    const counts = await pages(400);
    const v1 = counts.get('reviews-v1') ?? 0;
    const v2 = counts.get('reviews-v2') ?? 0;
    assert.equal(v1 + v2, 400, `only v1 and v2 answer: ${JSON.stringify([...counts])}`);
    // In whole requests: 300/400 is within 5 points, which 0.75 - 0.8 in floating point is not.
    assert.ok(Math.abs(v1 - 320) <= 20, `v1 got ${v1}/400`);

    await ok(['route', 'set', 'reviews', 'v3', '--match', 'header:end-user=jason', '-n', NS]);
    await waitFor('jason on v3', async () => (await pages(16, '?u=jason')).get('reviews-v3') === 16, 60_000, 200);
    assert.deepEqual([...(await pages(40, '?u=jason')).keys()], ['reviews-v3']);
    assert.ok(!(await pages(40)).has('reviews-v3'), 'everyone else stays on v1/v2');
  });

  it('stat, edges and check tell the truth: workloads by owner, unmeshed pods, a Pending proxy, a control plane at 0', { timeout: 240_000 }, async (t) => {
    if (!need(t)) return;
    const kube = c!.kube;
    const image = c!.image;
    const deploy = (name: string, labels: Obj, meshed: boolean, extra: Obj = {}): Obj => ({
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: NS, labels },
      spec: {
        replicas: 1, selector: { matchLabels: labels },
        template: {
          metadata: { labels, annotations: meshed ? {} : { 'mesh.io/inject': 'disabled' } },
          spec: { serviceAccountName: 'bookinfo-reviews', terminationGracePeriodSeconds: 1, ...extra, containers: [{ name: 'app', image, imagePullPolicy: 'IfNotPresent', command: ['sleep', '3600'], resources: { requests: { cpu: '5m', memory: '16Mi' } } }] },
        },
      },
    });
    // An unmeshed workload: MESHED 0/1. (The sample's namespace has no injection label: inject by hand, or not.)
    await kube.apply(deploy('plain', { app: 'plain', version: 'v1' }, false) as never);
    await waitFor('plain running', async () => (await pods(kube, NS, 'app=plain')).some((p) => p.status?.phase === 'Running'), 60_000, 250);

    const rows = (await waitFor('stat with traffic', async () => {
      const r = await json<Obj[]>(['stat', 'deploy', '-n', NS]);
      return r.find((x) => x.name === 'productpage-v1')?.rps > 0 && r.find((x) => x.name === 'reviews-v1')?.rps > 0 ? r : undefined;
    }, 60_000, 1000))!;
    assert.deepEqual(rows.map((r) => r.name).sort(), ['details-v1', 'plain', 'productpage-v1', 'ratings-v1', 'reviews-v1', 'reviews-v2', 'reviews-v3']);
    assert.equal(rows.find((r) => r.name === 'plain')!.meshed, '0/1');
    for (const r of rows.filter((x) => x.name !== 'plain')) assert.equal(r.meshed, '1/1', r.name);
    // One page in ~500 failed in two runs (cause not yet known; the window also counts from each proxy's start now).
    const page = rows.find((r) => r.name === 'productpage-v1')!;
    assert.ok(page.success >= 0.99, `productpage-v1 success ${page.success}: ${JSON.stringify(page)}`);

    const edges = await json<Obj[]>(['edges', 'deploy', '-n', NS]);
    const e = edges.find((x) => x.src === 'productpage-v1' && x.dst === 'reviews-v1');
    assert.ok(e, JSON.stringify(edges));
    assert.equal(e.client_id, `spiffe://cluster.local/ns/${NS}/sa/bookinfo-productpage`);
    assert.equal(e.server_id, `spiffe://cluster.local/ns/${NS}/sa/bookinfo-reviews`);
    assert.equal(e.secured, true);

    const check = async () => JSON.parse((await k(['check', '-o', 'json'])).stdout) as { success: boolean; categories: { checks: { description: string; result: string; error?: string }[] }[] };
    const result = (r: Awaited<ReturnType<typeof check>>, what: RegExp) => r.categories.flatMap((x) => x.checks).find((x) => what.test(x.description));
    assert.equal((await check()).success, true);

    // A meshed pod that cannot be scheduled (injected by the webhook, by its namespace's label): check fails on it.
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: HOOK_NS, labels: { 'mesh.io/inject': 'enabled' } } });
    await kube.apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'bookinfo-reviews', namespace: HOOK_NS } });
    await kube.apply({ ...deploy('stuck', { app: 'stuck', version: 'v1' }, true, { nodeSelector: { 'mesh.io/no-such-node': 'x' } }), metadata: { name: 'stuck', namespace: HOOK_NS } } as never);
    await waitFor('a Pending meshed pod', async () => (await pods(kube, HOOK_NS, 'app=stuck')).some((p) => p.status?.phase === 'Pending' && p.spec.initContainers?.some((x: Obj) => x.name === 'mesh-proxy')), 60_000, 250);
    const pending = await check();
    assert.equal(pending.success, false);
    assert.equal(result(pending, /data plane proxies are ready/)?.result, 'error');
    await kube.delete({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'stuck', namespace: HOOK_NS });
    await waitFor('the Pending pod gone', async () => !(await pods(kube, HOOK_NS, 'app=stuck')).length, 60_000, 250);
    await waitFor('check green again', async () => (await check()).success, 30_000, 500);

    // The control plane scaled to 0: no control plane, whatever 0/0 ready says.
    await scale(kube, 'mesh-system', 'mesh-control', 0);
    await waitFor('no control-plane pod', async () => !(await pods(kube, 'mesh-system', 'app.kubernetes.io/component=control')).length, 60_000, 250);
    const zero = await check();
    assert.equal(zero.success, false);
    assert.match(result(zero, /control plane is ready/)?.error ?? '', /scaled to 0/);
    await ok(['install', '--apply', '--cert-lifetime', `${CERT_LIFETIME_S}s`, '--wait', '3m'], 240_000);
    await kube.delete({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'plain', namespace: NS });
  });

  it('denies by default and allows by Service, for a Job the webhook meshed by its namespace label, which then completes', { timeout: 240_000 }, async (t) => {
    if (!need(t)) return;
    const kube = c!.kube;
    await ok(['policy', 'default', 'deny', '-n', NS]);
    // Whatever happens below, the next tests need the namespace open again.
    t.after(async () => {
      await k(['policy', 'delete', '--all', '-n', NS]);
      await waitFor('allow again', async () => /^reviews-v/.test(await page()), 60_000, 250).catch(() => undefined);
    });
    // In effect at productpage once a plaintext (identity-less) request from this machine is refused.
    await waitFor('deny in effect', async () => (await page()) === 'HTTP 403', 60_000, 250);
    // The client: a Job in the labelled namespace, calling the product page until it gets a whole page.
    const script = [
      "const http = require('http'); let n = 0;",
      "const again = () => (++n < 2000 ? setTimeout(once, 50) : process.exit(1));",
      "const once = () => http.get('http://productpage." + NS + ":9080/api/v1/products/0', (r) => { let b = ''; r.on('data', (c) => (b += c)); r.on('end', () => {",
      "  let a = {}; try { a = JSON.parse(b); } catch {}",
      "  const line = r.statusCode + ' details=' + (a.details && !a.details.error ? 'ok' : 'no') + ' reviews=' + (a.reviews ? a.reviews.podname || a.reviews.error : 'no');",
      "  console.log(line); if (/^200 details=ok reviews=reviews-v/.test(line)) process.exit(0); again(); }); }).on('error', (e) => { console.log('error ' + e.message); again(); });",
      'once();',
    ].join('\n');
    await kube.apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'tester', namespace: HOOK_NS } });
    await kube.apply({
      apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'tester', namespace: HOOK_NS },
      spec: {
        backoffLimit: 0, ttlSecondsAfterFinished: 600,
        template: {
          metadata: { labels: { app: 'tester' } },
          spec: {
            serviceAccountName: 'tester', restartPolicy: 'Never',
            containers: [{ name: 'tester', image: c!.image, imagePullPolicy: 'IfNotPresent', command: ['node', '-e', script], resources: { requests: { cpu: '5m', memory: '32Mi' } } }],
          },
        },
      },
    } as never);
    const testerPod = async () => (await pods(kube, HOOK_NS, 'job-name=tester'))[0];
    const log = async () => {
      const p = await testerPod();
      return p ? podLog(kube, HOOK_NS, p.metadata.name, 'tester') : '';
    };
    // On a timeout the error carries the tester's last lines: what it got instead.
    const saw = async (re: RegExp) => {
      let last = '';
      await waitFor(`the tester to log ${re}`, async () => re.test((last = await log())), 90_000, 500).catch((err: Error) => {
        throw new Error(`${err.message}; its last lines: ${last.trim().split('\n').slice(-5).join(' | ')}`);
      });
    };
    const p = await waitFor('the tester pod', testerPod, 30_000, 250);
    assert.ok(p.spec.initContainers?.some((x: Obj) => x.name === 'mesh-proxy' && x.restartPolicy === 'Always'), 'the webhook injected the native sidecar');
    await saw(/^403 /m);
    await ok(['policy', 'allow', '--from', `${HOOK_NS}/tester`, '--to', 'productpage', '-n', NS]);
    await ok(['policy', 'allow', '--from', 'productpage', '--to', 'details', '-n', NS]);
    // The page comes, with details, while reviews is still refused to productpage.
    await saw(/^200 details=ok reviews=reviews answered 403/m);
    await ok(['policy', 'allow', '--from', 'productpage', '--to', 'reviews', '-n', NS]);
    await ok(['policy', 'allow', '--from', 'reviews', '--to', 'ratings', '-n', NS]);
    await saw(/^200 details=ok reviews=reviews-v[12]$/m);
    // The app exited 0; its native sidecar is stopped after it, and the Job completes.
    await waitFor('the Job complete', async () => (await kube.read<Obj>({ apiVersion: 'batch/v1', kind: 'Job', name: 'tester', namespace: HOOK_NS }))?.status?.succeeded === 1, 60_000, 500);
    await ok(['policy', 'delete', '--all', '-n', NS]);
    await waitFor('allow again', async () => /^reviews-v/.test(await page()), 60_000, 250);
  });

  it('carries opaque TCP by transparent capture and HTTP/2 to an h2c Service port, through both sidecars', { timeout: 180_000 }, async (t) => {
    if (!need(t)) return;
    const kube = c!.kube;
    const srv = `capture-srv.${HOOK_NS}`;
    // One server pod: a TCP echo on 7000 and an h2c server on 50051 (appProtocol kubernetes.io/h2c) answering with
    // the HTTP version it was spoken to in and the caller identity its sidecar passed on.
    const serverScript = [
      "require('net').createServer((s) => { s.pipe(s); s.on('error', () => {}); }).listen(7000);",
      "require('http2').createServer((q, r) => r.end(JSON.stringify({ version: q.httpVersion, client: q.headers['mesh-client-id'] || '' }))).listen(50051);",
    ].join('\n');
    // The client: a line echoed over TCP (the connection is then held open, for stat), then one h2 request; each retried.
    const clientScript = [
      "const net = require('net'), http2 = require('http2'); let held;",
      "const retry = (f) => new Promise((done) => { let n = 0; const go = () => f().then(done, (e) => { console.log('retry ' + e.message); if (++n > 2400) process.exit(1); setTimeout(go, 50); }); go(); });",
      `const tcp = () => new Promise((ok, fail) => { const s = net.connect(7000, '${srv}'); let got = ''; s.setTimeout(5000, () => s.destroy(new Error('timeout')));`,
      "  s.on('error', fail); s.on('close', () => fail(new Error('closed after ' + JSON.stringify(got))));",
      "  s.on('data', (c) => { got += c; if (got === 'ping\\n') { s.removeAllListeners('close'); s.setTimeout(0); held = s; console.log('tcp echoed'); ok(); } }); s.write('ping\\n'); });",
      `const h2 = () => new Promise((ok, fail) => { const c = http2.connect('http://${srv}:50051'); c.on('error', fail); let status = 0, b = '';`,
      "  const r = c.request({ ':path': '/hello' }); r.on('response', (h) => (status = h[':status'])); r.on('data', (d) => (b += d)); r.on('error', fail);",
      "  r.on('end', () => { c.close(); if (status === 200) { console.log('h2 ' + b); ok(); } else fail(new Error('status ' + status + ' ' + b)); }); r.end(); });",
      'retry(tcp).then(() => retry(h2)).then(() => setInterval(() => held.write(\'\'), 60000));',
    ].join('\n');
    const app = (name: string, script: string, ports: number[]): Obj => ({
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: HOOK_NS },
      spec: {
        replicas: 1, selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name, version: 'v1' } },
          spec: {
            serviceAccountName: name, terminationGracePeriodSeconds: 1,
            containers: [{ name: 'app', image: c!.image, imagePullPolicy: 'IfNotPresent', command: ['node', '-e', script], ports: ports.map((containerPort) => ({ containerPort })), resources: { requests: { cpu: '5m', memory: '32Mi' } } }],
          },
        },
      },
    });
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: HOOK_NS, labels: { 'mesh.io/inject': 'enabled' } } });
    for (const name of ['capture-srv', 'capture-client']) await kube.apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: HOOK_NS } });
    await kube.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'capture-srv', namespace: HOOK_NS }, spec: { selector: { app: 'capture-srv' }, ports: [
      { name: 'echo', port: 7000, targetPort: 7000 }, { name: 'web', port: 50051, targetPort: 50051, appProtocol: 'kubernetes.io/h2c' },
    ] } } as never);
    await kube.apply(app('capture-srv', serverScript, [7000, 50051]) as never);
    // The server ready first, so the client's sidecar has its endpoints from the start (else the cluster IP is egress).
    await waitFor('capture-srv ready', async () => (await pods(kube, HOOK_NS, 'app=capture-srv')).some((p) => p.status?.conditions?.some((x: Obj) => x.type === 'Ready' && x.status === 'True')), 90_000, 250);
    await kube.apply(app('capture-client', clientScript, []) as never);
    const log = async () => {
      const p = (await pods(kube, HOOK_NS, 'app=capture-client'))[0];
      return p ? podLog(kube, HOOK_NS, p.metadata.name, 'app') : '';
    };
    const out = (await waitFor('the client to echo over TCP and get an h2 answer', async () => {
      const l = await log();
      return /^h2 /m.test(l) ? l : undefined;
    }, 90_000, 500))!;
    assert.match(out, /^tcp echoed$/m);
    const answer = JSON.parse(/^h2 (.*)$/m.exec(out)![1]!) as Obj;
    assert.deepEqual(answer, { version: '2.0', client: `spiffe://cluster.local/ns/${HOOK_NS}/sa/capture-client` }, 'h2c to the app, the caller proved by mTLS between the sidecars');
    // The client's sidecar carried the connection to the Service's cluster IP as a mesh tunnel, not as egress.
    const metrics = (await httpGet(await podIP(kube, HOOK_NS, 'app=capture-client'), 4191, '/metrics')).body.split('\n');
    assert.ok(metrics.some((l) => l.startsWith('tcp_open_total{') && l.includes('dst_service="capture-srv"') && l.includes('tls="true"') && l.includes('protocol="opaque"')), 'an opaque tunnel to capture-srv');
    assert.ok(!metrics.some((l) => l.includes('dst_mesh="false"')), 'nothing went out as egress');
    // mesh stat and edges count the held connection.
    const row = await waitFor('stat to count the TCP connection', async () => (await json<Obj[]>(['stat', 'deploy', '-n', HOOK_NS])).find((r) => r.name === 'capture-srv' && r.tcp_open_connections >= 1), 60_000, 1000);
    assert.equal(row!.meshed, '1/1');
    const edge = await waitFor('the TCP edge', async () => (await json<Obj[]>(['edges', 'deploy', '-n', HOOK_NS])).find((e) => e.src === 'capture-client' && e.dst === 'capture-srv' && e.tcp_connections >= 1), 60_000, 1000);
    assert.equal(edge!.server_id, `spiffe://cluster.local/ns/${HOOK_NS}/sa/capture-srv`);
    for (const name of ['capture-client', 'capture-srv']) await kube.delete({ apiVersion: 'apps/v1', kind: 'Deployment', name, namespace: HOOK_NS });
  });

  it('keeps serving with the control plane deleted, and check says it is gone', { timeout: 300_000 }, async (t) => {
    if (!need(t)) return;
    const kube = c!.kube;
    await kube.delete({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'mesh-control', namespace: 'mesh-system' });
    await waitFor('no control-plane pod', async () => !(await pods(kube, 'mesh-system', 'app.kubernetes.io/component=control')).length, 60_000, 250);
    const counts = await pages(100);
    assert.equal((counts.get('reviews-v1') ?? 0) + (counts.get('reviews-v2') ?? 0), 100, JSON.stringify([...counts]));
    const r = JSON.parse((await k(['check', '-o', 'json'])).stdout) as { success: boolean; categories: { checks: { description: string; result: string; error?: string }[] }[] };
    assert.equal(r.success, false);
    assert.match(r.categories.flatMap((x) => x.checks).find((x) => /control plane is ready/.test(x.description))?.error ?? '', /does not exist/);
    await ok(['install', '--apply', '--cert-lifetime', `${CERT_LIFETIME_S}s`, '--wait', '3m'], 240_000);
  });

  it(`renews workload certificates (${CERT_LIFETIME_S} s lifetime) and keeps serving across renewals`, { timeout: 180_000 }, async (t) => {
    if (!need(t)) return;
    const ip = await podIP(c!.kube, NS, 'app=reviews,version=v1');
    // A new one, current: one that expired while the control plane was away is renewed once it is back.
    const now = (await waitFor('a renewed, current certificate', async () => {
      const cert = await servedCert(ip, 4143);
      return cert.serial !== firstCert!.serial && cert.validTo > Date.now() ? cert : undefined;
    }, CERT_LIFETIME_S * 2000, 1000))!;
    assert.ok(now.validTo - now.validFrom <= (CERT_LIFETIME_S + 120) * 1000, `lifetime ${(now.validTo - now.validFrom) / 1000} s`);
    for (let i = 0; i < 10; i++) assert.match(await page(), /^reviews-v[12]$/);
  });

  it('re-rendering install keeps the installed trust anchor, issuer and webhook CA', { timeout: 60_000 }, async (t) => {
    if (!need(t)) return;
    const docs = parseAllDocuments((await ok(['install'])).stdout).map((d) => d.toJS() as Obj);
    const roots = await c!.kube.read<Obj>({ apiVersion: 'v1', kind: 'ConfigMap', name: 'mesh-identity-trust-roots', namespace: 'mesh-system' });
    const issuer = await c!.kube.read<Obj>({ apiVersion: 'v1', kind: 'Secret', name: 'mesh-identity-issuer', namespace: 'mesh-system' });
    const hook = await c!.kube.read<Obj>({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', name: 'mesh-proxy-injector' });
    const find = (kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name)!;
    assert.equal(find('ConfigMap', 'mesh-identity-trust-roots').data['ca-bundle.crt'], roots!.data['ca-bundle.crt']);
    assert.equal(find('Secret', 'mesh-identity-issuer').data['tls.crt'], issuer!.data['tls.crt']);
    assert.equal(find('MutatingWebhookConfiguration', 'mesh-proxy-injector').webhooks[0].clientConfig.caBundle, hook!.webhooks[0].clientConfig.caBundle);
  });

  it('uninstalls leaving nothing of mesh, the sample or the test behind', { timeout: 240_000 }, async (t) => {
    if (!need(t)) return;
    const kube = c!.kube;
    assert.match((await ok(['demo', '--down'])).stderr, /Removed the sample \(namespace bookinfo\)/);
    await kube.delete({ apiVersion: 'v1', kind: 'Namespace', name: HOOK_NS });
    await ok(['uninstall', '--apply', '--crds']);
    await waitFor('the namespaces gone', async () => {
      const names = (await kube.list<Obj>('v1', 'Namespace')).map((n) => n.metadata.name);
      return ![HOOK_NS, 'mesh-system', NS].some((n) => names.includes(n));
    }, 120_000, 500);
    const left = [
      ...(await kube.list<Obj>('apiextensions.k8s.io/v1', 'CustomResourceDefinition')).filter((x) => x.metadata.name.endsWith('.mesh.io')),
      ...(await kube.list<Obj>('rbac.authorization.k8s.io/v1', 'ClusterRole')).filter((x) => x.metadata.name.startsWith('mesh:')),
      ...(await kube.list<Obj>('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding')).filter((x) => x.metadata.name.startsWith('mesh:')),
      ...(await kube.list<Obj>('rbac.authorization.k8s.io/v1', 'RoleBinding', { namespace: 'kube-system' })).filter((x) => x.metadata.name.startsWith('mesh:')),
      ...await kube.list<Obj>('admissionregistration.k8s.io/v1', 'MutatingWebhookConfiguration'),
    ].map((x) => `${x.kind}/${x.metadata.name}`);
    assert.deepEqual(left, []);
  });
});
