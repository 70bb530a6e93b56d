// The control-plane client refuses a server that is not this mesh's control plane, by the error's
// type (a verified certificate of another identity), not by its words.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import type net from 'node:net';
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
});
