// HTTP inside CONNECT tunnels: a gRPC client with a proxy set (http_proxy, or grpc.http_connect_target) opens one
// CONNECT to the sidecar's outbound listener and sends every call through it. The sidecar answers the CONNECT, sees
// the HTTP/2 preface inside and serves the connection as its own HTTP port, so each call is balanced on its own over
// the three servers; the CONNECT's service is where calls that name no service in the mesh go.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { TestMesh, waitFor, type WorkloadInfo } from './support/mesh.js';
import { ECHO_PROTO, GRPC_APP, say, type EchoClient } from './support/grpc.js';
import { connectVia } from './support/tcp.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(ECHO_PROTO, { defaults: true })) as any;

/** A client whose channel goes through `proxy` (host:port) with CONNECT to `target`, as grpc-js does with http_proxy set. */
function viaProxy(proxy: string, target: string, o: Record<string, string> = {}): EchoClient {
  return new pkg.meshtest.Echo(proxy, grpc.credentials.createInsecure(), { 'grpc.http_connect_target': `dns:///${target}`, ...o });
}

describe('gRPC through CONNECT on the outbound listener', () => {
  const m = new TestMesh();
  let client: WorkloadInfo;
  let port = 0;
  const clients: EchoClient[] = [];

  before(async () => {
    await m.install();
    const servers: WorkloadInfo[] = [];
    const [r] = await Promise.all([
      m.cli(['run', '-d', '-o', 'json', '--name', 'client', '--', process.execPath, '-e', 'setInterval(() => {}, 1e9)']),
      ...[0, 1, 2].map(async () => servers.push(await m.run('echo', { app: GRPC_APP, extra: ['--app-protocol', 'h2c'] }))),
    ]);
    assert.equal(r.code, 0, r.stderr);
    client = JSON.parse(r.stdout) as WorkloadInfo;
    port = servers[0]!.appPort;
    // Ready when the client's sidecar knows all three endpoints (seen through the plain outbound port).
    const direct = new pkg.meshtest.Echo(client.outbound, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'echo' }) as EchoClient;
    clients.push(direct);
    const seen = new Set<string>();
    await waitFor('calls to reach all three servers', async () => {
      const u = await say(direct, { text: 'hello' });
      if (u.reply?.who) seen.add(u.reply.who);
      return seen.size === 3;
    }, 30_000, 50);
  });
  after(async () => {
    for (const c of clients) c.close();
    await m.cleanup();
  });

  /** 60 calls, 20 at a time, over one client; how many each server answered. */
  const spread = async (c: EchoClient): Promise<Map<string, number>> => {
    const by = new Map<string, number>();
    for (let round = 0; round < 3; round++) {
      const calls = await Promise.all(Array.from({ length: 20 }, (_, i) => say(c, { text: `sleep:${10 + (i % 5)}` })));
      for (const u of calls) {
        assert.equal(u.status.code, grpc.status.OK, u.status.details);
        by.set(u.reply!.who!, (by.get(u.reply!.who!) ?? 0) + 1);
      }
    }
    return by;
  };

  it('balances each call over the three servers, the calls naming the service', async () => {
    const c = viaProxy(client.outbound, `echo:${port}`, { 'grpc.default_authority': `echo:${port}` });
    clients.push(c);
    const by = await spread(c);
    assert.equal(by.size, 3, [...by].join(' '));
    for (const n of by.values()) assert.ok(n >= 5, `each server gets a share: ${[...by].join(' ')}`);
  });

  it('sends calls whose authority names no service in the mesh to the CONNECT\'s service', async () => {
    // Without a default authority the calls name the proxy's address: the CONNECT said where they go.
    const c = viaProxy(client.outbound, `echo:${port}`);
    clients.push(c);
    const by = await spread(c);
    assert.equal(by.size, 3, [...by].join(' '));
  });

  it('answers a CONNECT to a service at once, and carries bytes that are not HTTP as an opaque tunnel', async () => {
    const c = await connectVia(client.outbound, `echo:${port}`);
    assert.equal(c.status, 200, c.head);
    // The gRPC server's h2c side gets what is not a preface and closes: the bytes went through, opaque.
    let got = 0;
    const ended = new Promise<void>((r) => {
      c.sock.once('end', () => r());
      c.sock.once('close', () => r());
    });
    c.sock.on('error', () => {});
    c.sock.on('data', (d: Buffer) => (got += d.length));
    c.sock.resume();
    c.sock.write('not http at all\r\n');
    await ended;
    c.sock.destroy();
    assert.ok(got > 0, 'the server answered the bytes (an HTTP/2 GOAWAY) before it closed');
  });
});
