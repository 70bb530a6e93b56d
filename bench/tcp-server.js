// TCP upstream for the bulk paths: once a connection has sent its first bytes (so no proxy has to
// know a server-speaks-first port), it is sent 64 KiB chunks as fast as it takes them, until it closes.
import net from 'node:net';

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('bench/tcp-server.js: PORT must be set');
  process.exit(2);
}
const host = process.env.HOST || '127.0.0.1';
const CHUNK = Buffer.alloc(64 * 1024, 'x');

function pump(sock) {
  while (!sock.destroyed && sock.write(CHUNK));
}

const server = net.createServer((sock) => {
  sock.on('error', () => {});
  sock.once('data', () => {
    sock.resume();
    sock.on('drain', () => pump(sock));
    pump(sock);
  });
});
server.listen(port, host, () => console.log(`bench TCP server listening on ${host}:${port}`));

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
