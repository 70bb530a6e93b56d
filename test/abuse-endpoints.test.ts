// One bad endpoint must not black-hole a service: a peer whose certificate fails verification
// (expired, from an unknown CA, the wrong SPIFFE id) counts as a connect failure, is ejected, and
// the request goes to a healthy endpoint where the request allows it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createIssuer, createTrustAnchor, Issuer } from '../src/identity/ca.js';
import { request } from './support/mesh.js';
import { proxyError } from './support/http.js';
import { answer, makeCa, muxPeer, outbound, idOf, TD, HOUR, type Ca, type Outbound } from './support/mux-bed.js';

describe('an endpoint whose certificate fails verification', () => {
  let ca: Ca;
  const closers: Array<() => Promise<void>> = [];
  let good = 0;
  const bad: Record<string, number> = {};

  before(async () => {
    ca = await makeCa();
    const foreignAnchor = await createTrustAnchor(TD);
    const foreign = await createIssuer(TD, foreignAnchor);
    const foreignLeaf = new Issuer(foreign).issueLeaf({ uri: idOf('web'), publicKeyPem: ca.key.publicKeyPem, lifetimeMs: HOUR }) + foreign.certPem;
    const peers: Record<string, string> = {
      good: ca.leaf(idOf('web')),
      expired: ca.leaf(idOf('web'), { notBefore: new Date(Date.now() - 3 * HOUR) }),
      'unknown-ca': foreignLeaf,
      'wrong-id': ca.leaf(idOf('intruder')),
    };
    for (const [name, cert] of Object.entries(peers)) {
      const p = await muxPeer(cert, ca.key.keyPem, ca.anchor.certPem, answer(`${name}\n`));
      closers.push(p.close);
      if (name === 'good') good = p.port;
      else bad[name] = p.port;
    }
  });
  after(async () => {
    for (const c of closers) await c();
  });

  for (const kind of ['expired', 'unknown-ca', 'wrong-id']) {
    it(`is ejected and every call goes to the healthy endpoint (${kind})`, { timeout: 20_000 }, async (t) => {
      const o: Outbound = await outbound(ca, [
        { instance: 'web-good', port: good, identity: idOf('web') },
        { instance: `web-${kind}`, port: bad[kind]!, identity: idOf('web') },
      ]);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
      t.after(async () => {
        agent.destroy();
        await o.close();
      });
      // GETs may be sent again anywhere; 30 of them, 4 at a time, all answered by the good one.
      const got: string[] = [];
      await Promise.all(Array.from({ length: 4 }, async () => {
        while (got.length < 30) {
          got.push('');
          const r = await request(o.address, { path: '/', headers: { host: 'web' }, agent });
          got[got.indexOf('')] = `${r.status} ${r.body.trim()}`;
        }
      }));
      assert.deepEqual(got.filter((g) => g !== '200 good'), [], 'every call answered by the healthy endpoint');
      assert.match(o.metrics.render(), /outbound_endpoint_ejections_total\{[^}]*\} [1-9]/);
    });
  }

  it('answers a request that cannot be sent again with 502 peer_identity, then ejects the endpoint', { timeout: 20_000 }, async (t) => {
    const o = await outbound(ca, [{ instance: 'web-expired', port: bad.expired!, identity: idOf('web') }, { instance: 'web-good', port: good, identity: idOf('web') }]);
    t.after(() => o.close());
    const statuses: string[] = [];
    for (let i = 0; i < 10; i++) {
      // A streamed body is read as it goes out: once sent into a failed handshake it is gone.
      const r = await request(o.address, { method: 'POST', path: '/', headers: { host: 'web', 'transfer-encoding': 'chunked' }, body: 'x'.repeat(100) });
      statuses.push(r.status === 200 ? r.body.trim() : `${r.status} ${proxyError(r.headers)}`);
    }
    const failed = statuses.filter((s) => s !== 'good');
    // At most the first try (and a probe after the ejection ends) meets the bad endpoint.
    assert.ok(failed.length <= 2, statuses.join(', '));
    for (const f of failed) assert.match(f, /^502 peer_identity$/);
  });
});
