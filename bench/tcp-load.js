// Bulk TCP load: `node bench/tcp-load.js host:port connections warmupS durationS` opens the
// connections, sends each one line, then counts the bytes that come back; prints one JSON line
// with the bytes/s over the measured seconds (after the warm-up) and all bytes received (allBytes).
import net from 'node:net';

const [target, connArg, warmArg, durArg] = process.argv.slice(2);
const i = target?.lastIndexOf(':') ?? -1;
const connections = Number(connArg);
const warmupS = Number(warmArg);
const durationS = Number(durArg);
if (i < 0 || !(connections > 0) || !(warmupS >= 0) || !(durationS > 0)) {
  console.error('usage: node bench/tcp-load.js host:port connections warmupS durationS');
  process.exit(2);
}
const host = target.slice(0, i);
const port = Number(target.slice(i + 1));
let bytes = 0;
let allBytes = 0;
let measuring = false;
const socks = [];
let failed = null;

for (let c = 0; c < connections; c++) {
  const sock = net.connect({ host, port });
  socks.push(sock);
  sock.on('connect', () => sock.write('go\n'));
  sock.on('data', (chunk) => {
    allBytes += chunk.length;
    if (measuring) bytes += chunk.length;
  });
  sock.on('error', (err) => { failed ??= err.message; });
  sock.on('close', () => { if (measuring) failed ??= 'a connection closed during the measurement'; });
}
setTimeout(() => {
  measuring = true;
  const t0 = process.hrtime.bigint();
  setTimeout(() => {
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    measuring = false;
    for (const s of socks) s.destroy();
    const out = { bytes, seconds, bytesPerSec: bytes / seconds, allBytes, connections };
    if (failed) out.error = failed;
    console.log(JSON.stringify(out));
    process.exit(failed ? 1 : 0);
  }, durationS * 1000);
}, warmupS * 1000);
