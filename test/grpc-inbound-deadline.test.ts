// The server's sidecar enforces a gRPC call's grpc-timeout itself, for callers whose own sidecar did
// not (not ours, or of the previous version): a raw mesh/1 peer and an HTTPS client with a mesh
// certificate call an h2c gRPC server that ignores deadlines (grpc-js's would end the call itself)
// and answers too late, and get DEADLINE_EXCEEDED in time.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { TestMesh, freePort, waitFor, type WorkloadInfo } from './support/mesh.js';
import { frame, muxConnect, idOf, meshCredentials } from './support/mux-bed.js';

/** h2c on $PORT, gRPC framing, no deadline kept: /meshtest.Echo/Say answers after 8 s, /meshtest.Echo/Count sends a message every 300 ms. */
const LATE_APP = `
const http2 = require('node:http2');
const msg = Buffer.from([0, 0, 0, 0, 2, 0x18, 1]);
http2.createServer().on('stream', (st, h) => {
  st.on('error', () => {});
  st.resume();
  st.on('end', () => {
    if (h[':path'] === '/meshtest.Echo/Count') {
      st.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      st.on('wantTrailers', () => st.sendTrailers({ 'grpc-status': '0' }));
      let i = 0;
      const t = setInterval(() => (++i > 20 || st.destroyed ? (clearInterval(t), st.destroyed || st.end()) : st.write(msg)), 300);
      st.write(msg);
    } else setTimeout(() => st.destroyed || st.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0' }, { endStream: true }), 8000);
  });
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

const enum T { Headers = 1, Data = 2, Settings = 6, Trailers = 7 }
const END = 1;

/** One length-prefixed gRPC message: Msg{text, n}. */
function grpcMsg(text: string, n = 0): Buffer {
  const t = Buffer.from(text);
  const body = Buffer.concat([Buffer.from([0x0a, t.length]), t, n > 0 ? Buffer.from([0x18, n]) : Buffer.alloc(0)]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(body.length, 1);
  return Buffer.concat([prefix, body]);
}

describe('the inbound sidecar ends a gRPC call at its grpc-timeout', () => {
  const m = new TestMesh();
  let web: WorkloadInfo;
  let cert = '';
  let key = '';
  let ca = '';

  before(async () => {
    await m.install();
    const r = await m.cli(['run', '-d', '-o', 'json', '--name', 'echo', '--version', 'v1', '--port', String(await freePort()), '--app-protocol', 'h2c', '--', process.execPath, '-e', LATE_APP]);
    assert.equal(r.code, 0, r.stderr);
    web = JSON.parse(r.stdout) as WorkloadInfo;
    // An old sidecar's identity: a valid mesh certificate, a peer that enforces no deadline.
    ({ ca, cert, key } = await meshCredentials(m.dir, idOf('old-client')));
  });
  after(() => m.cleanup());

  it('answers a unary call over mesh/1 with DEADLINE_EXCEEDED when the app is late', async (t) => {
    const peer = await muxConnect(web.inbound, cert, key, ca);
    t.after(() => peer.sock.destroy());
    const started = Date.now();
    // Like a sidecar that keeps no deadline: it takes trailers (SETTINGS: 128 streams, Cap.Trailers), sends a head and
    // the body, and leaves the deadline to the header.
    const settings = Buffer.alloc(8);
    settings.writeUInt32BE(128, 0);
    settings.writeUInt32BE(1, 4);
    peer.sock.write(Buffer.concat([
      frame(T.Settings, 0, 0, settings),
      frame(T.Headers, 0, 1, 'POST /meshtest.Echo/Say HTTP/1.1\r\nHost: echo\r\ncontent-type: application/grpc\r\nte: trailers\r\ngrpc-timeout: 400m\r\ntransfer-encoding: chunked\r\n\r\n'),
      frame(T.Data, END, 1, grpcMsg('sleep:8000')),
    ]));
    // Nothing of the response came: the status is in the head (trailers-only, as the caller's sidecar passes it on).
    const status = await waitFor('the call to end', () => peer.frames.find((f) => (f.type === T.Headers || f.type === T.Trailers) && f.id === 1 && /grpc-status/.test(f.payload.toString('latin1'))), 6_000, 20) as { type: number; payload: Buffer };
    const took = Date.now() - started;
    const text = status.payload.toString('latin1');
    assert.match(text, /(^|\r\n)grpc-status: 4\r\n/);
    assert.equal(status.type, T.Headers);
    assert.match(text, /^HTTP\/1\.1 504 [^]*\r\nmesh-proxy-error: timeout/i);
    assert.ok(took >= 380 && took < 4_000, `answered after ${took} ms (deadline 400 ms, app 8000 ms)`);
  });

  it('ends a server stream already under way with grpc-status 4 in its trailers (HTTPS client, TE: trailers)', async () => {
    const started = Date.now();
    const r = await new Promise<{ status: number; trailers: NodeJS.Dict<string>; messages: number }>((resolve, reject) => {
      const [host, port] = web.inbound.split(':') as [string, string];
      const req = https.request({
        host, port: Number(port), method: 'POST', path: '/meshtest.Echo/Count', cert, key, ca, agent: false,
        checkServerIdentity: () => undefined,
        headers: { host: 'echo', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '1200m', 'transfer-encoding': 'chunked' },
      }, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => resolve({ status: res.statusCode!, trailers: res.trailers, messages: bytes }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.setTimeout(8_000, () => req.destroy(new Error('no end within 8 s')));
      // Messages every 300 ms for 6 s: the stream is under way when the 1.2 s deadline passes.
      req.end(grpcMsg('slow', 10));
    });
    const took = Date.now() - started;
    assert.equal(r.status, 200);
    assert.ok(r.messages > 0, 'messages came before the deadline');
    assert.equal(r.trailers['grpc-status'], '4');
    assert.ok(took >= 1_150 && took < 4_000, `ended after ${took} ms (deadline 1200 ms, stream 6000 ms)`);
  });
});
