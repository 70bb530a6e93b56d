// Transparent TCP capture (issue 12): the outbound sidecar reads a redirected connection's original destination with
// the Node-API addon (native/original_dst.c) and carries it there: a Service cluster IP through the mesh (mTLS tunnel),
// any other address as egress. Each case runs in a throwaway network namespace with an iptables REDIRECT, as mesh-init
// sets one up in a pod (test/support/capture-ns.ts does the work there and prints what it saw).
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { serviceAddressesFrom } from '../src/platform/kubernetes/control-platform.js';
import { initScript } from '../src/platform/kubernetes/inject.js';
import { RoutingTable } from '../src/proxy/table.js';
import { MetricsRegistry } from '../src/proxy/metrics.js';
import { createOutboundFront } from '../src/proxy/tcp-listeners.js';
import { originalDstAddon, transparentCapture, type Addon } from '../src/proxy/capture.js';
import type { TcpOutbound } from '../src/proxy/tcp.js';
import http from 'node:http';
import net from 'node:net';

const HERE = dirname(fileURLToPath(import.meta.url));
const SCRIPT = join(HERE, 'support', 'capture-ns.js');
const ADDON = join(HERE, '..', '..', 'native', 'build', 'original_dst.node');

const skip6 = spawnSync('unshare', ['-n', 'ip6tables', '-w', '5', '-t', 'nat', '-S']).status !== 0 ? 'needs ip6tables with the nat table (IPv6 NAT in the kernel)' : false;
const skip = process.getuid?.() !== 0 ? 'needs root (unshare -n, iptables)'
  : spawnSync('unshare', ['-n', 'iptables', '-w', '5', '-t', 'nat', '-S']).status !== 0 ? 'needs unshare and iptables with the nat table'
    : spawnSync('ip', ['-V']).status !== 0 ? 'needs ip (iproute2)'
      : !existsSync(ADDON) ? 'the addon is not built (no C compiler when npm run build ran: apt-get install gcc libc6-dev)'
        : false;

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function inNamespace(what: 'addon' | 'mesh' | 'mesh6'): Promise<Obj> {
  return new Promise((resolve, reject) => {
    execFile('unshare', ['-n', process.execPath, SCRIPT, what], { timeout: 150_000, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${what} in a network namespace failed: ${err.message}\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').pop()!));
    });
  });
}

/** The value of the first metric line with every label given. */
function metric(lines: string[], name: string, labels: Record<string, string>): number | undefined {
  const line = lines.find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** A meshed pod's own address goes through the mesh (mTLS, that pod): opaque TCP, and HTTP whose Host is no mesh service. */
function podIp(r: Obj): void {
  assert.equal(r.toPod, 'to the pod through the mesh');
  assert.equal(r.podHttp.status, 200);
  assert.match(r.podHttp.body.host, /^echo-a\.echo\.default\.svc\.cluster\.local:\d+$/);
  assert.equal(r.podHttp.body.id, 'spiffe://cluster.local/ns/default/sa/echo', 'the app saw the verified caller: it came over mTLS');
  assert.ok((metric(r.metrics, 'request_total', { direction: 'outbound', dst_service: 'echo', tls: 'true' }) ?? 0) >= 1);
}

describe('transparent TCP capture (SO_ORIGINAL_DST)', { skip }, () => {
  it('the addon reads the address a client dialled before the REDIRECT (IPv4 and IPv6), and none for a connection made to the listener itself', async () => {
    const r = await inNamespace('addon');
    assert.equal(r.redirected, '10.77.0.3:9', 'IPv4, on a dual-stack listener (v4-mapped)');
    assert.equal(r.direct, null);
    if (r.redirected6 !== 'no ip6tables nat') assert.equal(r.redirected6, '[fd77::5]:443', 'IPv6 (IP6T_SO_ORIGINAL_DST)');
    assert.ok(r.usPerCall > 0 && r.usPerCall < 1000, `a call took ${r.usPerCall} µs`);
    process.stdout.write(`# original destination: ${r.usPerCall.toFixed(1)} µs per connection\n`);
  });

  it('carries a captured connection to a cluster IP through the mesh, one to any other address as egress, and closes the latter when egress is denied', async () => {
    const r = await inNamespace('mesh');
    assert.equal(r.toService, 'through the mesh', 'echoed by the app behind the Service, through both ends of the mTLS tunnel');
    assert.equal(r.toOutside, 'outside the mesh');
    assert.equal(r.denied, 'closed');
    assert.equal(r.stillMeshed, 'still meshed', 'egress deny leaves mesh services alone');
    const m = r.metrics as string[];
    assert.equal(metric(m, 'tcp_open_total', { direction: 'outbound', dst_service: 'echo', tls: 'true', protocol: 'opaque' }), 2, 'to the cluster IP and to the pod IP');
    assert.equal(metric(m, 'tcp_open_total', { direction: 'inbound', client_id: 'spiffe://cluster.local/ns/default/sa/echo', protocol: 'opaque' }), 2);
    podIp(r);
    assert.equal(metric(m, 'tcp_open_total', { direction: 'outbound', dst_service: '10.77.0.3', dst_mesh: 'false', protocol: 'opaque' }), 1);
    assert.match((r.log as string[]).join('\n'), /captured TCP connection to 10\.77\.0\.3:\d+ closed \(denied\)/);
  });

  it('does the same over IPv6: an ip6tables REDIRECT to the [::1] outbound socket, the original destination from IP6T_SO_ORIGINAL_DST', { skip: skip6 }, async () => {
    const r = await inNamespace('mesh6');
    assert.equal(r.toService, 'through the mesh', 'to the IPv6 cluster IP, through the pod\'s IPv6 inbound listener');
    assert.equal(r.toOutside, 'outside the mesh');
    assert.equal(r.denied, 'closed');
    assert.equal(r.stillMeshed, 'still meshed');
    const m = r.metrics as string[];
    assert.equal(metric(m, 'tcp_open_total', { direction: 'outbound', dst_service: 'echo', tls: 'true', protocol: 'opaque' }), 2, 'to the cluster IP and to the pod IP');
    podIp(r);
    assert.equal(metric(m, 'tcp_open_total', { direction: 'outbound', dst_service: '[fd77::3]', dst_mesh: 'false', protocol: 'opaque' }), 1);
    assert.match((r.log as string[]).join('\n'), /captured TCP connection to \[fd77::3\]:\d+ closed \(denied\)/);
  });
});

describe('mesh-init\'s script for IPv6', { skip: skip || skip6 }, () => {
  it('sets the IPv4 rules with iptables and the same with ip6tables; running twice is the same', () => {
    const script = initScript(['9090'], ['5432']);
    const out = execFileSync('unshare', ['-n', 'sh', '-c', `${script}\n${script}\necho ---\niptables -t nat -S\necho ---\nip6tables -t nat -S`], { encoding: 'utf8' });
    const [, v4, v6] = out.split('---\n').map((part) => part.trim().split('\n').filter((r) => r.includes('MESH')));
    assert.equal(v4!.length, 10);
    assert.deepEqual(v6, v4);
    assert.ok(v6!.includes('-A MESH_OUTBOUND -p tcp -j REDIRECT --to-ports 4140'));
  });

  it('says so and leaves IPv6 alone where there is no ip6tables NAT', () => {
    const script = initScript();
    // An ip6tables that fails, first on PATH: as a kernel or image without IPv6 NAT.
    const bin = mkdtempSync(join(tmpdir(), 'mesh-noip6-'));
    try {
      writeFileSync(join(bin, 'ip6tables'), '#!/bin/sh\nexit 3\n', { mode: 0o755 });
      const r = spawnSync('unshare', ['-n', 'sh', '-c', `PATH=${bin}:$PATH\n${script}\niptables -t nat -S MESH_OUTBOUND`], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /mesh-init: no IPv6 NAT \(ip6tables\) in this pod: IPv6 TCP is not captured/);
      assert.match(r.stdout, /REDIRECT --to-ports 4140/);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});

describe('cluster IPs in the snapshot', () => {
  it('come from each Service (none for a headless one) and name the service in the proxy\'s table, IPv6 in brackets', () => {
    const svc = (name: string, spec: Obj) => ({ metadata: { name, namespace: 'shop' }, spec });
    const got = serviceAddressesFrom([svc('web', { clusterIP: '10.0.0.7', clusterIPs: ['10.0.0.7', 'fd00::7'] }), svc('db', { clusterIP: 'None' }), svc('old', { clusterIP: '10.0.0.9' })]);
    assert.deepEqual(Object.fromEntries(got), { 'shop/web': ['10.0.0.7', 'fd00::7'], 'shop/old': ['10.0.0.9'] });
    const metrics = new MetricsRegistry({});
    const table = new RoutingTable('cluster.local', 'shop', (ns, s) => metrics.requests({ dst_namespace: ns, dst_service: s }), () => ({ rules: [] }));
    table.apply({ version: '1', trustDomain: 'cluster.local', services: [{ namespace: 'shop', name: 'web', endpoints: [], addresses: ['10.0.0.7', 'fd00::7', 'not-an-ip'] }] });
    const web = table.current.hosts.get('web.shop');
    assert.ok(web);
    assert.equal(table.current.hosts.get('10.0.0.7'), web);
    assert.equal(table.current.hosts.get('[fd00::7]'), web);
    assert.equal(table.current.hosts.get('not-an-ip'), undefined);
  });
});

describe('meshed pod addresses in the proxy\'s table', () => {
  it('name their endpoint alone (IPv6 in brackets), never a loopback address nor one two pods share', () => {
    const metrics = new MetricsRegistry({});
    const table = new RoutingTable('cluster.local', 'shop', (ns, s) => metrics.requests({ dst_namespace: ns, dst_service: s }), () => ({ rules: [] }));
    const ep = (instance: string, address: string) => ({ instance, namespace: 'shop', service: 'db', version: 'v1', address, port: 4143, identity: 'spiffe://cluster.local/ns/shop/sa/db' });
    table.apply({ version: '1', trustDomain: 'cluster.local', services: [{ namespace: 'shop', name: 'db', endpoints: [
      ep('db-0', '10.1.0.5'), ep('db-1', 'fd00::6'), ep('local', '127.0.0.1'), ep('host-a', '192.168.1.9'), ep('host-b', '192.168.1.9'),
    ] }] });
    const pods = table.current.pods!;
    assert.deepEqual([...pods.keys()].sort(), ['10.1.0.5', '[fd00::6]']);
    assert.deepEqual(pods.get('10.1.0.5')!.target.endpoints.map((e) => e.info.instance), ['db-0']);
    assert.equal(pods.get('[fd00::6]')!.router, table.current.hosts.get('db.shop'));
    // A new snapshot keeps the pinned target (and so the endpoint's state).
    const before = pods.get('10.1.0.5')!.target;
    table.apply({ version: '2', trustDomain: 'cluster.local', services: [{ namespace: 'shop', name: 'db', endpoints: [ep('db-0', '10.1.0.5')] }] });
    assert.equal(table.current.pods!.get('10.1.0.5')!.target, before);
  });
});

describe('the outbound listener with capture on, for connections that were not redirected', () => {
  /** The listener as a pod's sidecar runs it, with `addon` (or why there is none); HTTP answered by a plain server. */
  async function front(addon: Addon | string) {
    const logged: string[] = [];
    const metrics = new MetricsRegistry({});
    const appConns = metrics.tcp({ direction: 'outbound', peer: 'src', tls: 'false' });
    const o = { table: () => ({ hosts: new Map(), fallback: null }) } as unknown as TcpOutbound;
    const web = http.createServer((req, res) => res.end(`http ${req.url}`));
    const server = createOutboundFront(web as never, o, appConns, transparentCapture(o, appConns, undefined, (m) => logged.push(m), addon));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    /** Opaque bytes in: what came back before the listener closed the connection. */
    const opaque = () => new Promise<string>((resolve) => {
      let got = '';
      const s = net.connect(port, '127.0.0.1', () => s.write('hello\n'));
      s.on('data', (c) => (got += c));
      s.on('close', () => resolve(got));
      s.on('error', () => {});
    });
    const get = () => new Promise<string>((resolve, reject) => http.get({ port, host: '127.0.0.1', path: '/x', agent: false }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve(b));
    }).on('error', reject));
    return { logged, opaque, get, close: () => new Promise((r) => server.close(r)) };
  }

  it('without the addon: HTTP is still served by Host, opaque TCP is closed with a log line saying why', async () => {
    const f = await front('the addon is not built (a test)');
    try {
      assert.equal(await f.get(), 'http /x');
      assert.equal(await f.opaque(), '');
      assert.deepEqual(f.logged, [
        'transparent TCP capture is off: the addon is not built (a test); HTTP is still routed by its Host',
        'opaque TCP on the outbound port closed: its original destination cannot be read (the addon is not built (a test))',
      ]);
    } finally {
      await f.close();
    }
  });

  it('with the addon: a connection made to the port itself has no original destination; HTTP served, opaque closed saying so', { skip: typeof originalDstAddon() === 'string' && 'the addon is not built' }, async () => {
    const f = await front(originalDstAddon());
    try {
      assert.equal(await f.get(), 'http /x');
      assert.equal(await f.opaque(), '');
      assert.equal(f.logged.length, 1);
      assert.match(f.logged[0]!, /^opaque TCP on the outbound port closed: it was not redirected there \(127\.0\.0\.1:\d+ dialled the port itself\); use CONNECT or an upstream listener$/);
    } finally {
      await f.close();
    }
  });
});
