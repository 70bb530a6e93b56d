// The floor of a two-hop Node proxy: the haproxy path's shape (one TLS 1.3 connection with client
// certificates per client connection) with nothing but stream.pipe in each hop: no HTTP parsing,
// routing, metrics or mux. What the mesh costs above it is the mesh's; what this costs above haproxy
// is Node's (streams, TLSWrap, a JS call per read and write).
//   node bench/relay-floor.js B <appPort> <certDir>            (server side: TLS in, plain to the app)
//   node bench/relay-floor.js A <bPort> <certDir>              (client side: plain in, TLS to B)
// Each prints the port it listens on.
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const [role, portArg, dir] = process.argv.slice(2);
const port = Number(portArg);
if ((role !== 'A' && role !== 'B') || !(port > 0) || !dir) {
  console.error('usage: node bench/relay-floor.js A|B <port> <certDir>');
  process.exit(2);
}
const pem = (f) => readFileSync(join(dir, f));

function join2(a, b) {
  a.setNoDelay(true);
  b.setNoDelay(true);
  a.pipe(b);
  b.pipe(a);
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
  a.on('close', () => b.destroy());
  b.on('close', () => a.destroy());
}

const server = role === 'B'
  ? tls.createServer({ key: pem('server.key'), cert: pem('server.crt'), ca: pem('ca.pem'), requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
    (c) => join2(c, net.connect(port, '127.0.0.1')))
  : net.createServer((c) => join2(c, tls.connect({ port, host: '127.0.0.1', key: pem('client.key'), cert: pem('client.crt'), ca: pem('ca.pem'),
    servername: 'bench-server', minVersion: 'TLSv1.3' })));
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
