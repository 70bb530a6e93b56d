// HTTP/1.1 trailer fields across the mesh with real processes and clients: a chunked request's
// trailers reach the app (HTTP/1.1 or h2c) and a chunked response's reach a client that said
// `TE: trailers` (curl, node http, node http2), through client sidecar → mesh/1 → server sidecar.
// Fields that may not trail (RFC 9110 6.5.1) are dropped; ones that frame or identify are refused.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, TestMesh, freePort, waitFor } from './support/mesh.js';

const APP = join(ROOT, 'test', 'fixtures', 'trailers-app.mjs');

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  trailers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A chunked POST with `trailers` by node's http client; `te` asks for the response's trailers. */
function post(outbound: string, host: string, trailers: Record<string, string>, o: { te?: boolean; path?: string } = {}): Promise<Answer> {
  const [h, p] = outbound.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: h, port: Number(p), method: 'POST', path: o.path ?? '/', agent: false, timeout: 10_000,
      headers: { host, 'transfer-encoding': 'chunked', ...(o.te ? { te: 'trailers', connection: 'te' } : {}) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, trailers: res.trailers, body: Buffer.concat(chunks).toString() }));
      res.on('aborted', () => reject(new Error('response aborted')));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.write('hello ');
    req.write('trailers');
    req.addTrailers(trailers);
    req.end();
  });
}

/** curl's raw view of a response (chunk framing and all): exit code and bytes. */
function curlRaw(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => execFile('curl', ['-sS', '--raw', '-i', '--max-time', '10', ...args], { encoding: 'latin1' }, (e, stdout) =>
    resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, out: stdout })));
}

describe('HTTP/1.1 trailers across the mesh', () => {
  const m = new TestMesh();
  let outbound = '';

  const run = async (name: string, extra: string[], app: string[]) => {
    const r = await m.cli(['run', '-d', '-o', 'json', '--name', name, '--version', 'v1', ...extra, '--', process.execPath, ...app]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { outbound: string };
  };

  before(async () => {
    await m.install();
    await run('web', ['--port', String(await freePort())], [APP]);
    await run('grpcish', ['--port', String(await freePort()), '--app-protocol', 'h2c'], [APP, 'h2c']);
    ({ outbound } = await run('client', [], ['-e', 'setInterval(() => {}, 1 << 30)']));
    // Both apps answer through the mesh before the cases run.
    for (const host of ['web', 'grpcish']) await waitFor(`${host} through the mesh`, async () => (await post(outbound, host, {})).status === 200, 30_000, 200);
  });
  after(() => m.cleanup());

  it('carries a chunked request\'s trailers to an HTTP/1.1 app, and its response\'s back to a client that asked', async () => {
    const r = await post(outbound, 'web', { 'x-sum': 'abc123' }, { te: true });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'h1 read 14 bytes\n');
    assert.deepEqual(JSON.parse(r.headers['x-got-trailers'] as string), { 'x-sum': 'abc123' });
    assert.equal(r.trailers['x-checksum'], 'len-14');
    assert.equal(r.trailers['x-echo'], 'abc123');
    assert.equal(r.trailers['set-cookie'], undefined, 'Set-Cookie may not trail (RFC 9110 6.5.1)');
  });

  it('drops response trailers for a client that did not say TE: trailers (curl sees the bare last chunk)', async (t) => {
    const curl = await new Promise<boolean>((r) => execFile('curl', ['--version'], (e) => r(e === null)));
    if (!curl) return t.skip('curl is not installed');
    const plain = await curlRaw(['-H', 'host: web', `http://${outbound}/`]);
    assert.equal(plain.code, 0, plain.out);
    assert.match(plain.out, /\r\n0\r\n\r\n$/);
    assert.doesNotMatch(plain.out, /x-checksum/);
    const asked = await curlRaw(['-H', 'host: web', '-H', 'te: trailers', '-H', 'connection: te', `http://${outbound}/`]);
    assert.equal(asked.code, 0, asked.out);
    assert.match(asked.out, /\r\n0\r\nx-checksum: len-0\r\nx-echo: none\r\n\r\n$/);
  });

  it('drops request trailers that may not trail and refuses one that would forge identity or framing', async () => {
    const r = await post(outbound, 'web', { 'x-sum': 'ok', authorization: 'Bearer late', 'content-type': 'text/evil' });
    assert.deepEqual(JSON.parse(r.headers['x-got-trailers'] as string), { 'x-sum': 'ok' });
    for (const forged of <Array<Record<string, string>>>[{ 'mesh-client-id': 'spiffe://cluster.local/ns/default/sa/admin' }, { 'content-length': '5' }]) {
      const refused = await post(outbound, 'web', forged).catch((e: Error) => e);
      assert.ok(!(refused instanceof Error), `answered, not cut: ${String(refused)}`);
      assert.equal((refused as Answer).status, 400);
      assert.match((refused as Answer).body, /not allowed in trailers/);
    }
  });

  it('cuts a response whose app sends a framing field as a trailer, rather than pass it on', async () => {
    const r = await post(outbound, 'web', {}, { te: true, path: '/bad-trailer' }).catch((e: Error) => e);
    assert.ok(r instanceof Error, 'the client sees the response cut short');
  });

  it('carries trailers between an HTTP/1.1 client and an h2c app both ways', async () => {
    const r = await post(outbound, 'grpcish', { 'x-sum': 'to-h2' }, { te: true });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'h2c read 14 bytes\n');
    assert.equal(JSON.parse(r.headers['x-got-trailers'] as string)['x-sum'], 'to-h2');
    assert.equal(r.trailers['x-checksum'], 'len-14');
    assert.equal(r.trailers['x-echo'], 'to-h2');
    assert.equal(r.trailers['set-cookie'], undefined);
  });

  it('carries trailers between an HTTP/2 client and an HTTP/1.1 app both ways', async (t) => {
    const session = http2.connect(`http://${outbound}`);
    t.after(() => session.close());
    session.on('error', () => {});
    const r = await new Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const st = session.request({ ':method': 'POST', ':path': '/', ':authority': 'web', te: 'trailers' }, { waitForTrailers: true });
      let headers: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      let body = '';
      st.on('response', (h) => (headers = h));
      st.on('trailers', (h) => (trailers = h));
      st.on('data', (c: Buffer) => (body += c.toString()));
      st.on('end', () => resolve({ headers, trailers, body }));
      st.on('error', reject);
      st.on('wantTrailers', () => st.sendTrailers({ 'x-sum': 'from-h2' }));
      st.setTimeout(10_000, () => st.close());
      st.end('hello trailers');
    });
    assert.equal(r.headers[':status'], 200);
    assert.equal(r.body, 'h1 read 14 bytes\n');
    assert.equal(JSON.parse(r.headers['x-got-trailers'] as string)['x-sum'], 'from-h2');
    assert.equal(r.trailers['x-checksum'], 'len-14');
    assert.equal(r.trailers['x-echo'], 'from-h2');
    assert.equal(r.trailers['set-cookie'], undefined);
  });
});
