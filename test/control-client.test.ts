// The control-plane client (the proxy's own HTTP/1.1 codec over TLS): it refuses a server that is not this mesh's
// control plane, by the error's type (a verified certificate of another identity), not by its words; it pools
// connections only with a certificate, times calls out, and keeps no process alive with an idle connection.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { ControlClient, ControlUnreachable } from '../src/api/client.js';
import { makeCa, TD } from './support/mux-bed.js';
import { CONTROL_IDENTITY } from '../src/api/client.js';

describe('the control-plane client', () => {
  it("says a mesh certificate of another identity is not this mesh's control plane", async () => {
    const ca = await makeCa();
    const server = tls.createServer({ cert: ca.leaf(`spiffe://${TD}/ns/default/sa/impostor`), key: ca.key.keyPem, minVersion: 'TLSv1.3' }, (s) => s.destroy());
    server.on('tlsClientError', () => {});
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = new ControlClient(`127.0.0.1:${(server.address() as net.AddressInfo).port}`, ca.anchor.certPem, TD);
    try {
      await assert.rejects(client.request('GET', '/v1/version'), (err: Error) => {
        assert.ok(err instanceof ControlUnreachable, String(err));
        assert.match(err.message, /is not this mesh's control plane \(control plane presented spiffe:\/\/cluster\.local\/ns\/default\/sa\/impostor\)/);
        return true;
      });
    } finally {
      client.close();
      await new Promise((r) => server.close(r));
    }
  });

  it('opens new connections once its certificate is renewed', async () => {
    const ca = await makeCa();
    const ctx = (sa: string) => tls.createSecureContext({ cert: ca.leaf(`spiffe://${TD}/ns/default/sa/${sa}`), key: ca.key.keyPem, ca: ca.anchor.certPem, minVersion: 'TLSv1.3' });
    // Answers with the identity the connection presented at its handshake, as the control plane judges it.
    const server = https.createServer({ cert: ca.leaf(CONTROL_IDENTITY(TD)), key: ca.key.keyPem, ca: ca.anchor.certPem, requestCert: true, minVersion: 'TLSv1.3' }, (req, res) => {
      const peer = (req.socket as tls.TLSSocket).getPeerX509Certificate();
      res.end(JSON.stringify({ peer: peer ? new X509Certificate(peer.raw).subjectAltName : null }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    let current = ctx('old');
    const client = new ControlClient(`127.0.0.1:${(server.address() as net.AddressInfo).port}`, ca.anchor.certPem, TD, () => current);
    const peer = async () => (await client.request<{ peer: string }>('GET', '/v1/version')).body.peer;
    try {
      assert.match(await peer(), /sa\/old$/);
      assert.match(await peer(), /sa\/old$/);
      current = ctx('new');
      assert.match(await peer(), /sa\/new$/);
    } finally {
      client.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  /** A control plane that counts the connections opened to it and answers with a call's method, path and body. */
  async function countingServer(ca: Awaited<ReturnType<typeof makeCa>>) {
    let connections = 0;
    const server = https.createServer({ cert: ca.leaf(CONTROL_IDENTITY(TD)), key: ca.key.keyPem, ca: ca.anchor.certPem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => res.end(JSON.stringify({ method: req.method, path: req.url, body, host: req.headers.host, type: req.headers['content-type'], auth: req.headers.authorization })));
    });
    server.keepAliveTimeout = 60_000;
    server.on('secureConnection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { server, port: (server.address() as net.AddressInfo).port, connections: () => connections };
  }

  it('pools connections once it has a certificate, and opens one per call without', async () => {
    const ca = await makeCa();
    const s = await countingServer(ca);
    const cert = tls.createSecureContext({ cert: ca.leaf(`spiffe://${TD}/ns/default/sa/web`), key: ca.key.keyPem, ca: ca.anchor.certPem, minVersion: 'TLSv1.3' });
    const pooled = new ControlClient(`127.0.0.1:${s.port}`, ca.anchor.certPem, TD, () => cert);
    const bare = new ControlClient(`127.0.0.1:${s.port}`, ca.anchor.certPem, TD);
    try {
      const r = await pooled.request<Record<string, string>>('POST', '/v1/things?x=1', { a: 1 }, { bearer: 'tok' });
      assert.deepEqual(r, { status: 200, body: { method: 'POST', path: '/v1/things?x=1', body: '{"a":1}', host: `127.0.0.1:${s.port}`, type: 'application/json', auth: 'Bearer tok' } });
      for (let i = 0; i < 3; i++) assert.equal((await pooled.request('GET', '/v1/version')).status, 200);
      assert.equal(s.connections(), 1, 'one kept-alive connection served every call');
      for (let i = 0; i < 3; i++) assert.equal((await bare.request('GET', '/v1/version')).status, 200);
      assert.equal(s.connections(), 4, 'each call without a certificate had a connection of its own');
    } finally {
      pooled.close();
      bare.close();
      s.server.closeAllConnections();
      await new Promise((r) => s.server.close(r));
    }
  });

  it('says the control plane is unreachable when nothing listens, or nothing answers in time', async () => {
    const ca = await makeCa();
    // Accepts and says nothing: not even the TLS handshake completes.
    const held: net.Socket[] = [];
    const mute = net.createServer((sock) => held.push(sock));
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
    const port = (mute.address() as net.AddressInfo).port;
    const silent = new ControlClient(`127.0.0.1:${port}`, ca.anchor.certPem, TD);
    try {
      const started = Date.now();
      await assert.rejects(silent.request('GET', '/v1/version', undefined, { timeoutMs: 300 }), (err: Error) => err instanceof ControlUnreachable && /did not answer within 300 ms/.test(err.message));
      assert.ok(Date.now() - started < 5_000);
    } finally {
      silent.close();
      for (const sock of held) sock.destroy();
      await new Promise((r) => mute.close(r));
    }
    const nobody = new ControlClient(`127.0.0.1:${port}`, ca.anchor.certPem, TD);
    await assert.rejects(nobody.request('GET', '/v1/version'), (err: Error) => err instanceof ControlUnreachable && /is not reachable \(ECONNREFUSED\)/.test(err.message));
  });

  it('keeps no process alive with an idle pooled connection', async () => {
    const ca = await makeCa();
    const s = await countingServer(ca);
    const creds = { anchor: ca.anchor.certPem, cert: ca.leaf(`spiffe://${TD}/ns/default/sa/web`), key: ca.key.keyPem, port: s.port };
    // A caller that makes one call and never closes its client: it exits once the call is answered.
    const script = `
      import tls from 'node:tls';
      const { ControlClient } = await import(${JSON.stringify(new URL('../src/api/client.js', import.meta.url).href)});
      const c = JSON.parse(process.env.CREDS);
      const ctx = tls.createSecureContext({ cert: c.cert, key: c.key, ca: c.anchor, minVersion: 'TLSv1.3' });
      const client = new ControlClient('127.0.0.1:' + c.port, c.anchor, ${JSON.stringify(TD)}, () => ctx);
      console.log('answered', (await client.request('GET', '/v1/version')).status);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, CREDS: JSON.stringify(creds) }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    try {
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      assert.equal(out.trim(), 'answered 200');
      assert.equal(code, 0, 'it exited by itself while its connection stayed open at the server');
      assert.equal(s.connections(), 1);
    } finally {
      clearTimeout(killer);
      s.server.closeAllConnections();
      await new Promise((r) => s.server.close(r));
    }
  });
});
