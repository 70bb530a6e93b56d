// Upgrades under per-request policy, on every side. The authorization of an upgrade request is the authorization of
// everything its connection carries afterwards, so the proxy makes only upgrades to a protocol that is not HTTP
// (WebSocket and the like), where policy allows the request's path; an h2c upgrade is not made (the request is served
// as HTTP/1.1 and what follows is read as the next request, under policy); on mesh/1 only a stream opened as an upgrade
// (the UPGRADE flag, see websocket.test.ts) upgrades.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import { SIDES, startBed, type Bed, type Side } from './support/hostile/bed.js';
import { waitFor } from './support/mesh.js';

const FORGED = 'spiffe://cluster.local/ns/default/sa/admin';

describe('upgrades through the sidecars', () => {
  let bed: Bed;
  before(async () => {
    bed = await startBed();
  });
  after(async () => {
    await bed?.close();
  });

  /** Writes `text` on a new connection to a side and collects what comes back until `until` holds or it closes. */
  const exchange = async (side: Side, text: string, until: (got: string) => boolean): Promise<{ got: string; sock: net.Socket }> => {
    const sock = await bed.connect(side);
    let got = '';
    let closed = false;
    sock.on('data', (c: Buffer) => (got += c.toString('latin1')));
    sock.on('close', () => (closed = true));
    sock.on('error', () => {});
    sock.write(text);
    await waitFor(`an answer on the ${side} side`, () => closed || until(got), 5_000, 5);
    return { got, sock };
  };
  const statuses = (got: string) => [...got.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => Number(m[1]));
  const h1Sides = SIDES.filter((s) => s !== 'inbound-mux');

  for (const side of h1Sides) {
    it(`carries a WebSocket upgrade on an allowed path under the proxy's identity only (${side})`, async (t) => {
      const from = bed.backend.seen.length;
      const { got, sock } = await exchange(side, `GET /ok/ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nmesh_client_id: ${FORGED}\r\nMesh-Client-Id: ${FORGED}\r\n\r\n`, (g) => g.includes('\r\n\r\n'));
      t.after(() => sock.destroy());
      assert.deepEqual(statuses(got), [101]);
      let echoed = '';
      sock.on('data', (c: Buffer) => (echoed += c.toString('latin1')));
      sock.write('frame bytes');
      await waitFor('the echo through the tunnel', () => echoed.includes('frame bytes'), 5_000, 5);
      const seen = bed.backend.seen.slice(from);
      assert.equal(seen.length, 1);
      assert.ok(seen[0]!.upgrade);
      const ids = seen[0]!.rawHeaders.filter((_, i, a) => i % 2 === 1 && /^mesh.client.id$/i.test(a[i - 1]!));
      assert.deepEqual(ids, bed.identity[side] === null ? [] : [bed.identity[side]]);
    });

    it(`answers an h2c upgrade as HTTP/1.1 and reads what follows as a request under policy (${side})`, async () => {
      const from = bed.backend.seen.length;
      const { got } = await exchange(side,
        'GET /ok/h2c HTTP/1.1\r\nHost: web\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n'
        + `GET /denied/inside HTTP/1.1\r\nHost: web\r\nmesh-client-id: ${FORGED}\r\n\r\n`,
        (g) => statuses(g).length >= 2);
      const seen = bed.backend.seen.slice(from);
      assert.equal(statuses(got)[0], 200, got);
      assert.ok(!statuses(got).includes(101));
      if (bed.denies[side]) {
        assert.equal(statuses(got)[1], 403);
        assert.deepEqual(seen.map((s) => s.url), ['/ok/h2c']);
      } else assert.deepEqual(seen.map((s) => s.url), ['/ok/h2c', '/denied/inside']);
      for (const s of seen) {
        assert.ok(!s.upgrade);
        assert.deepEqual(s.rawHeaders.filter((_, i, a) => i % 2 === 0 && /^(upgrade|http2-settings|connection)$/i.test(a[i]!)), [], 'no trace of the upgrade reaches the app');
      }
    });
  }

  for (const side of h1Sides.filter((s) => s !== 'inbound-plain')) {
    it(`refuses a WebSocket upgrade on a denied path (${side})`, async () => {
      const from = bed.backend.seen.length;
      const { got } = await exchange(side, 'GET /denied/ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /denied/after HTTP/1.1\r\nHost: web\r\n\r\n', (g) => g.includes('\r\n\r\n'));
      assert.equal(statuses(got)[0], 403);
      assert.equal(bed.backend.seen.length, from, 'nothing reached the app');
    });
  }

  for (const side of h1Sides) {
    it(`refuses an upgrade request with a body (${side})`, async () => {
      const from = bed.backend.seen.length;
      const body = 'GET /denied/x HTTP/1.1\r\nHost: web\r\n\r\n';
      const { got } = await exchange(side, `GET /ok/ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: ${body.length}\r\n\r\n${body}`, (g) => g.includes('\r\n\r\n'));
      assert.equal(statuses(got)[0], 400);
      assert.equal(bed.backend.seen.length, from);
    });
  }

  it('makes no upgrade from a mesh/1 request head without the UPGRADE flag: the request is served, its Upgrade dropped', async () => {
    const from = bed.backend.seen.length;
    const head = Buffer.from('GET /ok/ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', 'latin1');
    const frame = Buffer.alloc(10);
    frame[0] = 1;
    frame[1] = 1;
    frame.writeUInt32BE(1, 2);
    frame.writeUInt32BE(head.length, 6);
    const { got } = await exchange('inbound-mux', Buffer.concat([frame, head]).toString('latin1'), (g) => g.includes('HTTP/1.1 200'));
    assert.match(got, /HTTP\/1\.1 200/);
    const seen = bed.backend.seen.slice(from);
    assert.equal(seen.length, 1);
    assert.ok(!seen[0]!.upgrade);
  });

  for (const side of SIDES) {
    it(`answers 502 when the app switches protocols unasked (${side})`, async () => {
      const mux = side === 'inbound-mux';
      const text = 'GET /ok/switch HTTP/1.1\r\nHost: web\r\n\r\n';
      let wire = text;
      if (mux) {
        const f = Buffer.alloc(10);
        f[0] = 1;
        f[1] = 1;
        f.writeUInt32BE(1, 2);
        f.writeUInt32BE(text.length, 6);
        wire = Buffer.concat([f, Buffer.from(text, 'latin1')]).toString('latin1');
      }
      const { got } = await exchange(side, wire, (g) => /HTTP\/1\.1 \d{3}/.test(g));
      assert.match(got, /HTTP\/1\.1 502/);
    });
  }
});
