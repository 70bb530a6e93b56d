// mesh/1 under a hostile peer, against a real sidecar process: everything a peer can make the
// sidecar hold is bounded (streams, windows, what it must send back, app connections), and the
// sidecar's memory and file descriptors are measured from /proc while another client's requests
// through the mesh still succeed. Each case prints its figures (`# abuse ...`).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import tls from 'node:tls';
import { TestMesh, ECHO_APP, request, waitFor, type WorkloadInfo } from './support/mesh.js';
import { frame, muxConnect, peakWhile, procStats, idOf, meshCredentials } from './support/mux-bed.js';

const APP_CONNECTIONS = 64;
const MiB = 1024 * 1024;
const enum T { Headers = 1, Data = 2, Reset = 3, Window = 4, Ping = 5, Settings = 6 }

describe('a sidecar under mesh/1 abuse', () => {
  const m = new TestMesh();
  let web: WorkloadInfo;
  let client: WorkloadInfo;
  let cert = '';
  let key = '';
  let ca = '';

  const connect = () => muxConnect(web.inbound, cert, key, ca);
  const appConns = async () => JSON.parse((await request(`127.0.0.1:${web.appPort}`, { path: '/__conns' })).body) as { conns: number; peak: number };
  /** Another client's calls through its own sidecar: all must succeed while the abuse goes on. */
  const victim = async (n = 10): Promise<string[]> => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = await request(client.outbound, { path: '/', headers: { host: 'web' }, timeoutMs: 5_000 }).catch((e: Error) => ({ status: 0, body: e.message, headers: {} }));
      if (r.status !== 200) out.push(`${r.status} ${(r.headers as Record<string, string>)['mesh-proxy-error'] ?? r.body}`);
    }
    return out;
  };
  const report = (what: string, base: { rssMiB: number; fds: number }, peak: { rssMiB: number; fds: number }) =>
    console.log(`# abuse ${what}: sidecar RSS ${base.rssMiB} -> peak ${peak.rssMiB} MiB (+${peak.rssMiB - base.rssMiB}), fds ${base.fds} -> peak ${peak.fds} (+${peak.fds - base.fds})`);
  /** The sidecar lets go of what the abuse made it hold once the abuser leaves. */
  const settles = (base: { fds: number }) => waitFor('the sidecar to close what the abuse opened', () => procStats(web.pid).fds <= base.fds + 4, 15_000);

  before(async () => {
    await m.install();
    web = await m.run('web', { app: ECHO_APP, env: { MESH_PROXY_APP_CONNECTIONS: String(APP_CONNECTIONS), MESH_PROXY_APP_QUEUE: '128' } });
    client = await m.run('client');
    ({ ca, cert, key } = await meshCredentials(m.dir, idOf('attacker')));
    await waitFor('web to answer through the mesh', async () => (await victim(1)).length === 0, 20_000);
    // Warm: the victim's session and the sidecar's code paths exist before the baseline is taken.
    assert.deepEqual(await victim(20), []);
  });
  after(async () => {
    await m.cleanup();
  });

  it('holds 4096 streams on four connections that never read within its stream, memory and app-connection bounds', { timeout: 60_000 }, async () => {
    const base = procStats(web.pid);
    const attackers = await Promise.all([0, 1, 2, 3].map(() => connect()));
    let failed: string[] = [];
    const peak = await peakWhile(web.pid, async () => {
      for (const a of attackers) {
        // Never read: what the sidecar sends back piles up on its side, if anywhere.
        a.sock.pause();
        const heads: Buffer[] = [];
        for (let i = 0; i < 1024; i++) heads.push(frame(T.Headers, 1, 2 * i + 1, 'GET /bytes/1048576 HTTP/1.1\r\nHost: web\r\n\r\n'));
        a.sock.write(Buffer.concat(heads));
      }
      await waitFor('the app to be sending the attackers responses', async () => (await appConns()).peak >= APP_CONNECTIONS / 2, 10_000);
      failed = await victim();
    });
    const app = await appConns();
    report('4096 streams, 1 MiB responses, never read', base, peak);
    for (const a of attackers) a.sock.destroy();
    assert.deepEqual(failed, [], 'the other client is still served');
    assert.ok(app.peak <= APP_CONNECTIONS + 1, `the app saw ${app.peak} connections at once (cap ${APP_CONNECTIONS})`);
    assert.ok(peak.fds - base.fds <= APP_CONNECTIONS + 4 + 8, `fds grew by ${peak.fds - base.fds}`);
    assert.ok(peak.rssMiB - base.rssMiB < 96, `RSS grew by ${peak.rssMiB - base.rssMiB} MiB`);
    await settles(base);
  });

  it('closes a connection that sends an oversized ping, and stays bounded under a flood of small ones it never reads', { timeout: 60_000 }, async () => {
    const base = procStats(web.pid);
    const big = await connect();
    big.sock.write(frame(T.Ping, 0, 0, Buffer.alloc(MiB)));
    await Promise.race([big.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the connection with a 1 MiB ping is still open')), 5_000))]);
    assert.equal(big.frames.filter((f) => f.type === T.Ping).length, 0, 'no ACK for an oversized ping');

    const flood = await connect();
    flood.sock.pause();
    let failed: string[] = [];
    const ping = frame(T.Ping, 0, 0, Buffer.alloc(8));
    const peak = await peakWhile(web.pid, async () => {
      // 2 million pings (36 MB) the sidecar must answer, to a peer that reads none of the answers.
      const batch = Buffer.concat(Array.from({ length: 10_000 }, () => ping));
      let written = 0;
      for (let i = 0; i < 200 && !flood.sock.destroyed; i++) {
        written += batch.length;
        if (!flood.sock.write(batch)) await Promise.race([once(flood.sock, 'drain').catch(() => {}), flood.closed]);
      }
      failed = await victim();
      console.log(`# abuse ping flood: wrote ${Math.round(written / MiB)} MiB of pings before the sidecar closed the connection`);
    });
    report('ping flood, answers never read', base, peak);
    assert.ok(flood.sock.destroyed, 'the flooding connection was closed');
    assert.deepEqual(failed, []);
    assert.ok(peak.rssMiB - base.rssMiB < 48, `RSS grew by ${peak.rssMiB - base.rssMiB} MiB`);
    await settles(base);
  });

  it('resets a stream whose data overruns its window, and closes a connection of this version that overruns the connection window', { timeout: 60_000 }, async () => {
    const base = procStats(web.pid);
    // Requests that hold all of this identity's app connections: the bodies below wait for one, unread.
    const hog = await connect();
    hog.sock.write(Buffer.concat(Array.from({ length: APP_CONNECTIONS / 2 }, (_, i) => frame(T.Headers, 1, 2 * i + 1, 'GET /hold HTTP/1.1\r\nHost: web\r\n\r\n'))));
    await waitFor('the held requests to take their app connections', async () => (await appConns()).conns >= APP_CONNECTIONS / 2, 10_000);
    let failed: string[] = [];
    const peak = await peakWhile(web.pid, async () => {
      // A peer of the previous version (no SETTINGS): 8 MiB on one stream, none of it read.
      const old = await connect();
      const chunk = Buffer.alloc(64 * 1024, 97);
      const out = [frame(T.Headers, 0, 1, `POST /hold HTTP/1.1\r\nHost: web\r\nContent-Length: ${8 * MiB}\r\n\r\n`)];
      for (let i = 0; i < 128; i++) out.push(frame(T.Data, 0, 1, chunk));
      old.sock.write(Buffer.concat(out));
      await waitFor('a reset of the overrunning stream', () => old.frames.some((f) => f.id === 1 && f.type === T.Reset), 10_000, 20);
      const rst = old.frames.find((f) => f.id === 1 && f.type === T.Reset)!;
      assert.equal(rst.payload[0], 2, 'a protocol error');
      assert.match(rst.payload.subarray(1).toString(), /window/);
      assert.ok(!old.sock.destroyed, 'one stream overran: the connection stays');

      // A peer of this version: SETTINGS, then 16 streams each within its window, 4 MiB in all.
      const cur = await connect();
      const frames = [frame(T.Settings, 0, 0, Buffer.from([0, 0, 0, 128]))];
      for (let s = 0; s < 16; s++) {
        frames.push(frame(T.Headers, 0, 2 * s + 1, `POST /hold HTTP/1.1\r\nHost: web\r\nContent-Length: ${256 * 1024}\r\n\r\n`));
        for (let i = 0; i < 4; i++) frames.push(frame(T.Data, 0, 2 * s + 1, chunk));
      }
      cur.sock.write(Buffer.concat(frames));
      await Promise.race([cur.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('still open after overrunning the connection window')), 10_000))]);
      failed = await victim();
      old.sock.destroy();
      hog.sock.destroy();
    });
    report('window overruns (8 MiB on one stream; 4 MiB over a 2 MiB connection window)', base, peak);
    assert.deepEqual(failed, []);
    assert.ok(peak.rssMiB - base.rssMiB < 32, `RSS grew by ${peak.rssMiB - base.rssMiB} MiB`);
    await settles(base);
  });

  it('counts upgraded connections against the app-connection bound: one caller gets at most its share, then 503', { timeout: 60_000 }, async () => {
    const base = procStats(web.pid);
    const [host, port] = web.inbound.split(':') as [string, string];
    const N = APP_CONNECTIONS; // twice one caller's share
    const socks: tls.TLSSocket[] = [];
    const statuses = await Promise.all(Array.from({ length: N }, async () => {
      const sock = tls.connect({ host, port: Number(port), cert, key, ca, servername: 'web.default.mesh.local', checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'] });
      socks.push(sock);
      sock.on('error', () => {});
      await once(sock, 'secureConnect');
      sock.write('GET /upgrade HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
      let got = '';
      await waitFor('an answer to the upgrade', () => {
        const d = sock.read() as Buffer | null;
        if (d) got += d.toString('latin1');
        return got.includes('\r\n\r\n') || sock.destroyed;
      }, 15_000, 10);
      return Number(/^HTTP\/1\.1 (\d+)/.exec(got)?.[1] ?? 0);
    }));
    const upgraded = statuses.filter((s) => s === 101).length;
    const refused = statuses.filter((s) => s === 503).length;
    const peak = procStats(web.pid);
    report(`${N} upgrades from one caller (${upgraded} made, ${refused} refused)`, base, peak);
    assert.equal(upgraded, APP_CONNECTIONS / 2, `one caller holds at most half of the ${APP_CONNECTIONS} app connections (statuses: ${statuses.join(',')})`);
    assert.equal(refused, N - upgraded);
    assert.ok((await appConns()).conns <= APP_CONNECTIONS + 1, 'the app never holds more than the bound');
    assert.deepEqual(await victim(), [], 'another caller still gets through');
    for (const s of socks) s.destroy();
    // The slots come back when the upgraded connections end: the same caller may upgrade again.
    await settles(base);
    await waitFor('a slot to come back', async () => {
      const sock = tls.connect({ host, port: Number(port), cert, key, ca, servername: 'web.default.mesh.local', checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'] });
      sock.on('error', () => {});
      await once(sock, 'secureConnect');
      sock.write('GET /upgrade HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
      const [d] = (await once(sock, 'data')) as [Buffer];
      sock.destroy();
      return d.toString('latin1').startsWith('HTTP/1.1 101');
    }, 10_000);
  });

  it('closes a connection that sends a head frame over the limit, before reading it', { timeout: 30_000 }, async () => {
    const a = await connect();
    const h = Buffer.alloc(10);
    h[0] = T.Headers;
    h.writeUInt32BE(1, 2);
    h.writeUInt32BE(MiB, 6);
    a.sock.write(h);
    await Promise.race([a.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('still open after announcing a 1 MiB head')), 5_000))]);
    assert.deepEqual(await victim(3), []);
  });
});
