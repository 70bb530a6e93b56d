// The control-plane client refuses a server that is not this mesh's control plane, by the error's
// type (a verified certificate of another identity), not by its words.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import type net from 'node:net';
import { ControlClient, ControlUnreachable } from '../src/api/client.js';
import { makeCa, TD } from './support/mux-bed.js';

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
});
