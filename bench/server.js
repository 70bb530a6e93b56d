// Upstream for every path: keep-alive HTTP server answering each request with 200 and a 1 KB body.
import http from 'node:http';

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('bench/server.js: PORT must be set');
  process.exit(2);
}
const host = process.env.HOST || '127.0.0.1';
const body = Buffer.alloc(1024, 'x');

const server = http.createServer((req, res) => {
  // Drain any request body so the connection stays reusable.
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  });
});
// Outlast the proxies' idle pools so they, not we, decide when to close.
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.listen(port, host, () => console.log(`bench server listening on ${host}:${port}`));

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
