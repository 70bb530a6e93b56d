// Securing the mesh end to end: the control plane's API refuses what it must (admin credential,
// join tokens per identity, TLS 1.3 only), `mesh check` reports a real mesh, and the issuer and the
// trust anchor rotate without a restart while traffic flows.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import { TestMesh, request, waitFor, alive, type WorkloadInfo } from './support/mesh.js';
import { createIssuer, generateKey, splitPem } from '../src/identity/ca.js';
import { buildCsr } from '../src/identity/der.js';
import { uriSans } from '../src/identity/spiffe.js';
import { joinTokenFor } from '../src/platform/local/state.js';

const WEB = 'spiffe://cluster.local/ns/default/sa/web';
const CLIENT = 'spiffe://cluster.local/ns/default/sa/client';
const LIFETIME_MS = 8000;

interface ApiReply {
  status: number;
  body: { error?: string; certificate?: string; chain?: string[]; trustAnchors?: string; issuer?: string; [k: string]: unknown };
}

describe('securing the local mesh', () => {
  const m = new TestMesh();
  let web: WorkloadInfo;
  let client: WorkloadInfo;
  const file = (...p: string[]) => readFileSync(join(m.dir, ...p), 'utf8');
  const port = () => (JSON.parse(file('mesh.json')) as { controlPort: number }).controlPort;
  const adminToken = () => m.adminToken();
  const joinToken = (ns: string, sa: string) => joinTokenFor(file('secrets', 'join.key').trim(), ns, sa);

  function api(method: string, path: string, o: { bearer?: string; body?: unknown; cert?: string; key?: string } = {}): Promise<ApiReply> {
    return m.api<ApiReply['body']>(method, path, { bearer: o.bearer, json: o.body, cert: o.cert, key: o.key });
  }

  async function certificate(ns: string, sa: string, bearer?: string, auth: { cert?: string; key?: string } = {}, key?: { keyPem: string }) {
    const kp = key ?? (await generateKey());
    const r = await api('POST', '/v1/certificates', { bearer, body: { namespace: ns, serviceAccount: sa, csr: buildCsr(kp.keyPem, `${ns}/${sa}`) }, ...auth });
    return { ...r, keyPem: kp.keyPem };
  }

  /** Requests client → web all along; returns a stop function giving the failures. */
  function traffic(): () => Promise<{ ok: number; failures: string[] }> {
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const loop = (async () => {
      while (!stop) {
        try {
          const r = await request(client.outbound, { path: '/during', headers: { host: 'web' } });
          if (r.status === 200) ok++;
          else failures.push(`${r.status} ${r.headers['mesh-proxy-error'] ?? r.body.slice(0, 80)}`);
        } catch (err) {
          failures.push((err as Error).message);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    return async () => {
      stop = true;
      await loop;
      return { ok, failures };
    };
  }

  /** The certificate a proxy presents on its inbound listener now (no client certificate needed to see it). */
  function servedLeaf(w: WorkloadInfo): Promise<X509Certificate> {
    const [host, port] = w.inbound.split(':') as [string, string];
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host, port: Number(port), rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
        const leaf = s.getPeerX509Certificate();
        s.destroy();
        leaf ? resolve(leaf) : reject(new Error(`${w.instance} presented no certificate`));
      });
      s.setTimeout(5000, () => s.destroy(new Error(`TLS to ${w.instance} timed out`)));
      s.on('error', reject);
    });
  }

  before(async () => {
    // Short-lived workload certificates so that rotations complete within the test; long enough for slow machines.
    await m.install(['--cert-lifetime', `${LIFETIME_MS / 1000}s`]);
    [web, client] = await Promise.all([m.run('web'), m.run('client')]);
    await waitFor('traffic to flow', async () => (await request(client.outbound, { headers: { host: 'web' } })).status === 200);
  });
  after(() => m.cleanup());

  describe('the control plane API', () => {
    const adminCalls: Array<[string, string, unknown?]> = [
      ['GET', '/v1/endpoints'],
      ['GET', '/v1/snapshot'],
      ['GET', '/v1/config/policies'],
      ['PUT', '/v1/config/policies', { policies: [] }],
      ['GET', '/v1/config/routes'],
      ['GET', '/v1/identity'],
      ['POST', '/v1/identity/reload'],
    ];
    for (const [method, path, body] of adminCalls) {
      it(`refuses ${method} ${path} without the admin credential (401)`, async () => {
        for (const bearer of [undefined, 'wrong', joinToken('default', 'web')]) {
          const r = await api(method, path, { bearer, body });
          assert.equal(r.status, 401, `${method} ${path} with ${bearer ?? 'no credential'}`);
        }
      });
    }

    it('answers an admin call with the credential', async () => {
      const r = await api('GET', '/v1/identity', { bearer: adminToken() });
      assert.equal(r.status, 200);
      assert.match(String(r.body.issuer), /BEGIN CERTIFICATE/);
    });

    it('refuses a certificate request without a join token, or with a bad one (403)', async () => {
      for (const bearer of [undefined, 'not-a-token', adminToken()]) {
        const r = await certificate('default', 'web', bearer);
        assert.equal(r.status, 403, `with ${bearer ?? 'none'}`);
        assert.equal(r.body.certificate, undefined);
      }
    });

    it("refuses identity A's join token for identity B (403)", async () => {
      for (const [ns, sa] of [['default', 'client'], ['other', 'web'], ['mesh-system', 'mesh-control']]) {
        const r = await certificate(ns!, sa!, joinToken('default', 'web'));
        assert.equal(r.status, 403, `${ns}/${sa}`);
        assert.match(String(r.body.error), /not authorized to obtain identity/);
      }
    });

    it('signs only the identity the token is for, whatever names the CSR carries', async () => {
      const kp = await generateKey();
      const csr = forge.pki.createCertificationRequest();
      csr.publicKey = forge.pki.publicKeyFromPem(kp.publicKeyPem);
      csr.setSubject([{ name: 'commonName', value: CLIENT }]);
      csr.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: CLIENT }] }] }]);
      csr.sign(forge.pki.privateKeyFromPem(kp.keyPem), forge.md.sha256.create());
      const r = await api('POST', '/v1/certificates', { bearer: joinToken('default', 'web'), body: { namespace: 'default', serviceAccount: 'web', csr: forge.pki.certificationRequestToPem(csr) } });
      assert.equal(r.status, 200);
      assert.deepEqual(uriSans(new X509Certificate(r.body.certificate!).raw), [WEB]);
    });

    it("refuses a renewal with A's certificate for identity B (403), and renews A", async () => {
      // Keys made first: the certificate is short-lived, so use it at once.
      const [k1, k2, k3] = await Promise.all([generateKey(), generateKey(), generateKey()]);
      const a = await certificate('default', 'web', joinToken('default', 'web'), {}, k1);
      assert.equal(a.status, 200);
      const auth = { cert: a.body.certificate! + a.body.chain!.join(''), key: a.keyPem };
      assert.equal((await certificate('default', 'client', undefined, auth, k2)).status, 403);
      const renewed = await certificate('default', 'web', undefined, auth, k3);
      assert.equal(renewed.status, 200);
      assert.deepEqual(uriSans(new X509Certificate(renewed.body.certificate!).raw), [WEB]);
    });

    it("never lets a workload register or remove another workload's endpoints (403)", async () => {
      const a = await certificate('default', 'web', joinToken('default', 'web'));
      assert.equal(a.status, 200);
      const auth = { cert: a.body.certificate! + a.body.chain!.join(''), key: a.keyPem };
      const reg = await api('POST', '/v1/endpoints', { ...auth, body: { instance: 'fake-client', namespace: 'default', service: 'client', version: 'v1', port: 1 } });
      assert.equal(reg.status, 403);
      const del = await api('DELETE', `/v1/endpoints/${client.instance}`, auth);
      assert.equal(del.status, 403);
      const eps = await api('GET', '/v1/endpoints', { bearer: adminToken() });
      assert.ok((eps.body as unknown as { instance: string }[]).some((e) => e.instance === client.instance));
    });

    it('does not take a certificate from another trust anchor as proof of identity', async () => {
      const { createTrustAnchor, Issuer } = await import('../src/identity/ca.js');
      const rogueAnchor = await createTrustAnchor('cluster.local');
      const rogue = new Issuer(await createIssuer('cluster.local', rogueAnchor));
      const kp = await generateKey();
      const cert = rogue.issueLeaf({ uri: WEB, publicKeyPem: kp.publicKeyPem, lifetimeMs: 3600_000 });
      const r = await certificate('default', 'web', undefined, { cert: cert + rogue.issuer.certPem, key: kp.keyPem });
      assert.equal(r.status, 403);
    });

    it('speaks TLS 1.3 only', async () => {
      const ca = file('identity', 'trust-anchor.crt');
      const connect = (maxVersion: tls.SecureVersion, minVersion: tls.SecureVersion) => new Promise<string>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: port(), ca, maxVersion, minVersion, checkServerIdentity: () => undefined }, () => {
          const v = s.getProtocol() ?? '';
          s.destroy();
          resolve(v);
        });
        s.on('error', reject);
      });
      assert.equal(await connect('TLSv1.3', 'TLSv1.3'), 'TLSv1.3');
      for (const v of ['TLSv1.2', 'TLSv1.1'] as const) {
        await assert.rejects(connect(v, 'TLSv1'), /alert|version|ECONNRESET|socket hang up/i, `${v} must be refused`);
      }
    });
  });

  describe('mesh check and identity rotation', () => {
    it('passes mesh check on the running mesh, as text and JSON', async () => {
      const r = await m.cli(['check', '--wait', '10s']);
      assert.equal(r.code, 0, r.stdout);
      assert.match(r.stdout, /^mesh-control-plane\n-{18}\n√ mesh is installed in the state directory\n/);
      assert.match(r.stdout, /√ data plane proxies have valid certificates\n/);
      assert.match(r.stdout, /\nStatus check results are √\n$/);
      const j = JSON.parse((await m.cli(['check', '-o', 'json', '--wait', '10s'])).stdout) as { success: boolean; categories: { categoryName: string; checks: { result: string }[] }[] };
      assert.equal(j.success, true);
      assert.deepEqual(j.categories.map((c) => c.categoryName), ['mesh-control-plane', 'mesh-version', 'mesh-identity', 'mesh-data-plane']);
    });

    it('passes mesh check --pre for a fresh state dir', async () => {
      const r = await m.cli(['--state-dir', join(m.dir, 'fresh'), 'check', '--pre']);
      assert.equal(r.code, 0, r.stdout);
      assert.match(r.stdout, /√ Node.js version is supported \(>= 20\)/);
    });

    it('rotates the issuer without restarting the control plane, dropping no request', { timeout: 60_000 }, async () => {
      const pid = m.controlPid();
      const before = await api('GET', '/v1/identity', { bearer: adminToken() });
      const done = traffic();
      const r = await m.cli(['identity', 'rotate-issuer']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /the control plane loaded it \(no restart\)/);
      const after = await api('GET', '/v1/identity', { bearer: adminToken() });
      assert.notEqual(after.body.issuer, before.body.issuer);
      assert.equal(after.body.issuer, file('identity', 'issuer.crt').trim() + '\n');
      // Both proxies renew from the new issuer within a lifetime (8 s).
      const issuer = new X509Certificate(String(after.body.issuer));
      await waitFor('both proxies to serve a certificate from the new issuer', async () => {
        const leaves = await Promise.all([web, client].map(servedLeaf));
        return leaves.every((l) => l.checkIssued(issuer) && l.verify(issuer.publicKey));
      }, 30_000, 250);
      const { ok, failures } = await done();
      assert.deepEqual(failures, []);
      assert.ok(ok > 20);
      assert.equal(m.controlPid(), pid);
      assert.ok(alive(pid));
      const c = await certificate('default', 'web', joinToken('default', 'web'));
      assert.equal(c.body.chain![0], after.body.issuer);
    });

    it('rotates the trust anchor in three phases while traffic flows', { timeout: 120_000 }, async () => {
      const oldAnchor = file('identity', 'trust-anchor.crt');
      const done = traffic();
      let r = await m.cli(['identity', 'rotate-anchor', '--phase', 'switch']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /no trust anchor rotation is under way/);
      r = await m.cli(['identity', 'rotate-anchor', '--phase', 'add']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(splitPem(file('identity', 'trust-anchor.crt')).length, 2);
      const served = await api('GET', '/v1/identity', { bearer: adminToken() });
      assert.equal(splitPem(String(served.body.trustAnchors)).length, 2, 'the control plane hands out both anchors');
      const issued = await certificate('default', 'web', joinToken('default', 'web'));
      assert.equal(splitPem(issued.body.trustAnchors!).length, 2, 'with every certificate');
      const warn = await m.cli(['check', '--wait', '0s']);
      assert.match(warn.stdout, /‼ no trust anchor rotation is left half done/);
      r = await m.cli(['identity', 'rotate-anchor', '--wait', '30s']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /new issuer under the new trust anchor/);
      r = await m.cli(['identity', 'rotate-anchor', '--phase', 'remove', '--wait', '30s']);
      assert.equal(r.code, 0, r.stderr);
      const removed = Date.now();
      const bundle = splitPem(file('identity', 'trust-anchor.crt'));
      assert.equal(bundle.length, 1);
      assert.ok(!oldAnchor.includes(bundle[0]!.trim()), 'the old anchor is gone');
      // Every proxy renews under the new anchor alone (its renewal brings the one-anchor bundle); requests keep working.
      const anchor = new X509Certificate(bundle[0]!);
      const issuer = new X509Certificate(file('identity', 'issuer.crt'));
      assert.ok(issuer.checkIssued(anchor) && issuer.verify(anchor.publicKey), 'the issuer is under the new anchor');
      await waitFor('both proxies to renew after the old anchor was removed', async () => {
        const leaves = await Promise.all([web, client].map(servedLeaf));
        // Issue time = notAfter - lifetime, cut to the second: it errs early, so this never passes too soon.
        return leaves.every((l) => l.verify(issuer.publicKey) && Date.parse(l.validTo) - LIFETIME_MS >= removed);
      }, 30_000, 250);
      const { ok, failures } = await done();
      assert.deepEqual(failures, []);
      assert.ok(ok > 50);
      const check = await m.cli(['check', '--wait', '10s']);
      assert.equal(check.code, 0, check.stdout);
      assert.doesNotMatch(check.stdout, /‼|×/);
    });

    it('refuses to load an issuer that no trust anchor signed, keeping the one it has', async () => {
      const { createTrustAnchor } = await import('../src/identity/ca.js');
      const before = { crt: file('identity', 'issuer.crt'), key: file('identity', 'issuer.key') };
      const foreign = await createIssuer('cluster.local', await createTrustAnchor('cluster.local'));
      writeFileSync(join(m.dir, 'identity', 'issuer.crt'), foreign.certPem);
      writeFileSync(join(m.dir, 'identity', 'issuer.key'), foreign.keyPem);
      const r = await m.cli(['identity', 'reload']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /not signed by any trust anchor/);
      const check = await m.cli(['check', '--wait', '0s']);
      assert.equal(check.code, 1);
      assert.match(check.stdout, /× issuer certificate is issued by the trust anchor/);
      assert.match(check.stdout, /× control plane signs with the current issuer and trust anchors/);
      writeFileSync(join(m.dir, 'identity', 'issuer.crt'), before.crt);
      writeFileSync(join(m.dir, 'identity', 'issuer.key'), before.key);
      assert.equal((await m.cli(['check', '--wait', '5s'])).code, 0);
    });

    it('exits 1 once the issuer has expired', async () => {
      const anchorKey = file('identity', 'trust-anchor.key');
      const expired = await createIssuer('cluster.local', { certPem: file('identity', 'trust-anchor.crt'), keyPem: anchorKey }, 600_000, new Date(Date.now() - 3600_000));
      writeFileSync(join(m.dir, 'identity', 'issuer.crt'), expired.certPem);
      writeFileSync(join(m.dir, 'identity', 'issuer.key'), expired.keyPem);
      const r = await m.cli(['check', '--wait', '0s']);
      assert.equal(r.code, 1);
      assert.match(r.stdout, /× issuer certificate is within its validity period\n {4}the issuer certificate expired on /);
      assert.match(r.stdout, /Status check results are ×\n$/);
    });

    it('fails fast when the control plane is not running', async () => {
      const pid = m.controlPid()!;
      process.kill(pid, 'SIGKILL');
      await waitFor('the control plane to die', () => !alive(pid));
      const t0 = Date.now();
      const r = await m.cli(['check', '--wait', '0s', '-o', 'json']);
      assert.equal(r.code, 1);
      const j = JSON.parse(r.stdout) as { success: boolean; categories: { checks: { description: string; result: string; error?: string }[] }[] };
      assert.equal(j.success, false);
      const failed = j.categories.flatMap((c) => c.checks).find((c) => c.result === 'error')!;
      assert.equal(failed.description, 'control plane process is running');
      assert.ok(Date.now() - t0 < 10_000);
    });
  });
});
