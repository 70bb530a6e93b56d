// Reference path: haproxy A (plain in) → TLS 1.3 with client certs → haproxy B → server, for HTTP/1.1, gRPC or TCP.
import { writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand, startProcess, stopProcess, onCleanup, makeTempDir, freePort, waitFor200, waitForGrpc, waitForTcp } from './procs.js';

const HAPROXY = process.env.HAPROXY || '/usr/sbin/haproxy';
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function openssl(args, cwd) {
  const { code, stderr } = await runCommand('openssl', args, { cwd, timeoutMs: 30_000 });
  if (code !== 0) throw new Error(`openssl ${args[0]} failed: ${stderr}`);
}

/** A throwaway CA plus server and client certs (ECDSA P-256), as haproxy-ready cert+key PEMs. */
export async function makeCerts(dir) {
  await writeFile(join(dir, 'ext.cnf'), [
    '[server]',
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature',
    'extendedKeyUsage = serverAuth',
    'subjectAltName = DNS:bench-server',
    '[client]',
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature',
    'extendedKeyUsage = clientAuth',
    'subjectAltName = DNS:bench-client',
    '',
  ].join('\n'));
  await openssl(['req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=bench-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  for (const [name, serial] of [['server', '2'], ['client', '3']]) {
    await openssl(['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=bench-${name}`], dir);
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', serial,
      '-days', '1', '-extfile', 'ext.cnf', '-extensions', name, '-out', `${name}.crt`], dir);
    const pem = (await readFile(join(dir, `${name}.crt`), 'utf8')) + (await readFile(join(dir, `${name}.key`), 'utf8'));
    await writeFile(join(dir, `${name}.pem`), pem, { mode: 0o600 });
  }
  return { ca: join(dir, 'ca.pem'), server: join(dir, 'server.pem'), client: join(dir, 'client.pem') };
}

// One thread each: the 2 cores are shared by load generator, server and both proxies.
const global = (mode) => `global
    nbthread 1
    maxconn 4096
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-server-options ssl-min-ver TLSv1.3

defaults
    mode ${mode === 'tcp' ? 'tcp' : 'http'}${mode === 'tcp' ? '' : `
    option http-keep-alive
    http-reuse always
    timeout http-keep-alive 60s`}
    timeout connect 5s
    timeout client 60s
    timeout server 60s
`;

/**
 * Client-side proxy: plain listener (HTTP/1.1, h2c for gRPC, or raw TCP), mTLS upstream (pooled
 * connections for HTTP; h2 by ALPN for gRPC).
 */
export function configA({ listenPort, upstreamPort, certs, mode = 'http' }) {
  return `${global(mode)}
frontend outbound
    bind 127.0.0.1:${listenPort}${mode === 'grpc' ? ' proto h2' : ''}
    default_backend mesh_hop

backend mesh_hop
    server b 127.0.0.1:${upstreamPort} ssl verify required ca-file ${certs.ca} crt ${certs.client} ssl-min-ver TLSv1.3 sni str(bench-server) verifyhost bench-server${mode === 'grpc' ? ' alpn h2' : ''}
`;
}

/** Server-side proxy: TLS 1.3 listener that requires a client cert, plain to the app (h2c for gRPC). */
export function configB({ listenPort, appPort, certs, mode = 'http' }) {
  return `${global(mode)}
frontend inbound
    bind 127.0.0.1:${listenPort} ssl crt ${certs.server} ca-file ${certs.ca} verify required ssl-min-ver TLSv1.3${mode === 'grpc' ? ' alpn h2' : ''}
    default_backend app

backend app
    server app 127.0.0.1:${appPort}${mode === 'grpc' ? ' proto h2' : ''}
`;
}

async function startHaproxy(cfgPath, name) {
  const check = await runCommand(HAPROXY, ['-c', '-f', cfgPath], { timeoutMs: 10_000 });
  if (check.code !== 0) throw new Error(`haproxy ${name} config rejected:\n${check.stdout}${check.stderr}`);
  const child = startProcess(HAPROXY, ['-f', cfgPath, '-db']);
  onCleanup(() => stopProcess(child));
  return child;
}

export async function haproxyVersion() {
  const { stdout } = await runCommand(HAPROXY, ['-v'], { timeoutMs: 5000 });
  return stdout.match(/version (\S+)/)?.[1] ?? 'unknown';
}

/** Build the two-hop haproxy path in front of an app on appPort; mode http (HTTP/1.1), grpc (h2) or tcp. */
export async function setupHaproxy({ appPort, mode = 'http' }) {
  const dir = await makeTempDir('mesh-bench-haproxy-');
  const certs = await makeCerts(dir);
  const portA = await freePort();
  const portB = await freePort();
  await writeFile(join(dir, 'b.cfg'), configB({ listenPort: portB, appPort, certs, mode }));
  await writeFile(join(dir, 'a.cfg'), configA({ listenPort: portA, upstreamPort: portB, certs, mode }));
  const b = await startHaproxy(join(dir, 'b.cfg'), 'B (server side)');
  const a = await startHaproxy(join(dir, 'a.cfg'), 'A (client side)');
  const hostPort = `127.0.0.1:${portA}`;
  const ready = { timeoutMs: 15_000, watch: [a, b], what: 'haproxy path' };
  if (mode === 'grpc') await waitForGrpc(hostPort, 'bench-grpc', ready);
  else if (mode === 'tcp') await waitForTcp(hostPort, ready);
  else await waitFor200(hostPort, 'bench-server', ready);
  return {
    url: mode === 'tcp' ? hostPort : `http://${hostPort}/`,
    host: mode === 'grpc' ? 'bench-grpc' : 'bench-server',
    proxies: [{ name: 'haproxy A (client side)', label: 'A', pid: a.pid }, { name: 'haproxy B (server side)', label: 'B', pid: b.pid }],
    stop: () => Promise.all([stopProcess(a), stopProcess(b)]),
  };
}
