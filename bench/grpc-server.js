// gRPC upstream for the gRPC paths: h2c (prior knowledge), every call unary: the request message is
// read whole, the answer is one 1 KB message and grpc-status 0 in trailers. Plain node:http2 with
// gRPC's framing (5-byte prefix), so the server's own cost stays small beside the proxies'.
import http2 from 'node:http2';

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('bench/grpc-server.js: PORT must be set');
  process.exit(2);
}
const host = process.env.HOST || '127.0.0.1';
const MESSAGE = 1024;
// One length-prefixed message: flag 0 (not compressed), big-endian length, then a bytes field
// (tag 1, wire type 2) filled with 'x'.
const reply = Buffer.alloc(5 + MESSAGE, 'x');
reply[0] = 0;
reply.writeUInt32BE(MESSAGE, 1);
reply[5] = 0x0a;
reply[6] = 0x80 | ((MESSAGE - 3) & 0x7f);
reply[7] = (MESSAGE - 3) >> 7;
const HEAD = { ':status': 200, 'content-type': 'application/grpc' };
const TRAILERS = { 'grpc-status': '0' };

function sendTrailers() {
  this.sendTrailers(TRAILERS);
}

const server = http2.createServer({ maxSessionMemory: 64 });
server.on('stream', (stream) => {
  stream.resume();
  stream.on('end', () => {
    if (stream.destroyed) return;
    stream.respond(HEAD, { waitForTrailers: true });
    stream.on('wantTrailers', sendTrailers);
    stream.end(reply);
  });
  stream.on('error', () => {});
});
server.on('sessionError', () => {});
server.listen(port, host, () => console.log(`bench gRPC server listening on ${host}:${port}`));

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
