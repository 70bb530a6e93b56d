// A long-lived gRPC stream outlives its sidecars' certificates (issue 12): with 6 s certificates both
// sidecars renew while one bidirectional call goes on, and the call neither breaks nor loses a message.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestMesh, request, type WorkloadInfo } from './support/mesh.js';
import { GRPC_APP, echoClient, untilAnsweredBy, type EchoClient, type Msg } from './support/grpc.js';

async function expiry(admin: string): Promise<number> {
  const body = (await request(admin, { path: '/metrics' })).body;
  return Number(/^identity_cert_expiration_timestamp_seconds(?:\{[^}]*\})? (\S+)$/m.exec(body)![1]);
}

describe('a gRPC stream across certificate renewal', () => {
  const m = new TestMesh();
  let client: WorkloadInfo;
  let server: WorkloadInfo;
  let echo: EchoClient;

  before(async () => {
    await m.install(['--cert-lifetime', '6s']);
    const [r, s] = await Promise.all([
      m.cli(['run', '-d', '-o', 'json', '--name', 'client', '--', process.execPath, '-e', 'setInterval(() => {}, 1e9)']),
      m.run('echo', { app: GRPC_APP, extra: ['--app-protocol', 'h2c'] }),
    ]);
    assert.equal(r.code, 0, r.stderr);
    client = JSON.parse(r.stdout) as WorkloadInfo;
    server = s;
    echo = echoClient(client.outbound, 'echo');
    await untilAnsweredBy(echo, 1);
  });
  after(async () => {
    echo?.close();
    await m.cleanup();
  });

  it('keeps one bidirectional call going while both sidecars renew twice', { timeout: 90_000 }, async () => {
    const seen = { client: new Set([await expiry(client.admin)]), server: new Set([await expiry(server.admin)]) };
    const call = echo.chat();
    let failed: Error | undefined;
    call.on('error', (e: Error) => (failed = e));
    let next: ((m: Msg) => void) | null = null;
    call.on('data', (x: Msg) => next?.(x));
    let sent = 0;
    // Renewal comes at ~70% of 6 s: three distinct expiries per sidecar are two renewals.
    const deadline = Date.now() + 60_000;
    while (seen.client.size < 3 || seen.server.size < 3) {
      assert.ok(Date.now() < deadline, `renewals within 60 s: client ${seen.client.size - 1}, server ${seen.server.size - 1}`);
      for (let i = 0; i < 5; i++, sent++) {
        const answered = new Promise<Msg>((r) => (next = r));
        call.write({ text: `m${sent}` });
        let timer: NodeJS.Timeout | undefined;
        const reply = await Promise.race([answered, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), 10_000)))]);
        clearTimeout(timer);
        assert.equal(failed, undefined, `the call broke after ${sent} messages: ${failed?.message}`);
        assert.equal(reply?.text, `echo m${sent}`, `message ${sent} answered in order`);
      }
      seen.client.add(await expiry(client.admin));
      seen.server.add(await expiry(server.admin));
    }
    const ended = new Promise<void>((resolve, reject) => {
      call.on('end', resolve);
      call.on('error', reject);
    });
    call.end();
    await ended;
    assert.ok(sent > 50, `only ${sent} messages`);
  });
});
