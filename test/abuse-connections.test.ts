// Every listener of a sidecar holds a bounded number of connections (MESH_PROXY_MAX_CONNECTIONS):
// the ones past it are closed on accept, and the listener serves again once they go.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { TestMesh, request, waitFor, type WorkloadInfo } from './support/mesh.js';

const MAX = 20;

describe('a listener under a connection flood', () => {
  const m = new TestMesh();
  let web: WorkloadInfo;
  const socks: net.Socket[] = [];

  before(async () => {
    await m.install();
    web = await m.run('web', { env: { MESH_PROXY_MAX_CONNECTIONS: String(MAX) } });
  });
  after(async () => {
    for (const s of socks) s.destroy();
    await m.cleanup();
  });

  it(`keeps at most ${MAX} connections open on its outbound listener, and serves again once they close`, { timeout: 30_000 }, async () => {
    const [host, port] = web.outbound.split(':') as [string, string];
    let closed = 0;
    for (let i = 0; i < MAX * 2; i++) {
      const s = net.connect(Number(port), host);
      s.on('error', () => {});
      s.on('close', () => closed++);
      socks.push(s);
      await once(s, 'connect');
    }
    await waitFor(`the ${MAX} connections past the bound to be closed`, () => closed >= MAX, 10_000);
    assert.equal(closed, MAX, 'exactly the connections past the bound are closed');
    for (const s of socks) s.destroy();
    await waitFor('the listener to serve again', async () => (await request(web.outbound, { path: '/', headers: { host: 'web' } }).catch(() => ({ status: 0 }))).status === 200, 10_000);
  });
});
