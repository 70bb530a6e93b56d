// The connection stack (tcp.ts): a TCP connection runs the same route lookup, balancer with its ejection accounting,
// and retry of what never reached a peer as a request does, over real mesh/1 tunnels with mutual TLS.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { makeCa, muxPeer, idOf, TD, listenTracked as listen, type Ca, type Listening } from './support/mux-bed.js';
import { openTcp, type TcpOutbound } from '../src/proxy/tcp.js';
import { RoutingTable } from '../src/proxy/table.js';
import { routeSettingsFromSnapshot } from '../src/proxy/route-config.js';
import { MetricsRegistry } from '../src/proxy/metrics.js';
import { newMtlsSessions } from '../src/proxy/layers/forward.js';
import { Egress } from '../src/proxy/egress.js';
import type { ErrorCode } from '../src/proxy/errors.js';

/** A port nothing listens on (one that was just closed). */
async function deadPort(): Promise<number> {
  const l = await listen(net.createServer());
  await l.close();
  return l.port;
}

describe('the connection stack', () => {
  let ca: Ca;
  let echo: Listening;
  let peer: Listening;
  let entry: Listening;
  let metrics: MetricsRegistry;
  let o: TcpOutbound;
  const refusals: ErrorCode[] = [];

  before(async () => {
    ca = await makeCa();
    echo = await listen(net.createServer((s) => s.pipe(s)));
    // The peer's inbound: every tunnel goes to the echo server.
    peer = await muxPeer(ca.leaf(idOf('web')), ca.key.keyPem, ca.anchor.certPem, {
      request: (_req, res) => res.destroy(),
      upgrade: (_req, sock) => sock.destroy(),
      tunnel(t) {
        const app = net.connect({ host: '127.0.0.1', port: echo.port, allowHalfOpen: true });
        app.once('connect', () => t.accept(app));
        app.once('error', () => t.refuse(502, 'echo is down'));
      },
    });
    metrics = new MetricsRegistry({ namespace: 'default', deployment: 'client-v1', pod: 'client-0' });
    const table = new RoutingTable(TD, 'default', (namespace, service) => metrics.requests({ direction: 'outbound', dst_namespace: namespace, dst_service: service }), routeSettingsFromSnapshot);
    const dead = await deadPort();
    table.apply({
      version: '1', trustDomain: TD,
      services: [{ namespace: 'default', name: 'web', endpoints: [
        { instance: 'web-dead', namespace: 'default', service: 'web', version: 'v1', address: '127.0.0.1', port: dead, identity: idOf('web') },
        { instance: 'web-live', namespace: 'default', service: 'web', version: 'v1', address: '127.0.0.1', port: peer.port, identity: idOf('web') },
      ] }],
    });
    o = {
      table: () => table.current,
      transport: { sessions: newMtlsSessions(), secureContext: tls.createSecureContext({ cert: ca.leaf(idOf('client')), key: ca.key.keyPem, ca: ca.anchor.certPem }) },
      egress: new Egress(metrics, 'default', () => false),
      statsFor: (ep) => metrics.tcp({ direction: 'outbound', peer: 'dst', dst_pod: ep.instance, protocol: 'opaque' }),
    };
    // What the app connects to: each connection is carried to the authority its first line names.
    entry = await listen(net.createServer({ allowHalfOpen: true }, (sock) => {
      sock.once('data', (first: Buffer) => {
        sock.pause();
        openTcp(o, sock, first.toString().trim(), null, {
          open: () => sock.write('open\n'),
          refused(code) {
            refusals.push(code);
            sock.end(`refused ${code}\n`);
          },
        });
      });
    }));
  });
  after(async () => {
    await entry?.close();
    o?.transport.sessions.destroy();
    o?.egress.close();
    await peer?.close();
    await echo?.close();
  });

  /** Connects through the stack to `authority`, sends `text` once open, and reads until `want` or the close. */
  const through = (authority: string, text: string, want: string) => new Promise<string>((resolve, reject) => {
    const s = net.connect(entry.port, '127.0.0.1');
    let got = '';
    s.on('data', (c: Buffer) => {
      got += c.toString();
      if (got === 'open\n') s.write(text);
      if (got.includes(want)) {
        s.destroy();
        resolve(got);
      }
    });
    s.on('close', () => resolve(got));
    s.on('error', reject);
    s.write(`${authority}\n`);
  });

  it('carries every connection to the live endpoint, the dead one tried and ejected', async () => {
    const ejections = () => metrics.render().split('\n').filter((l) => l.startsWith('outbound_endpoint_ejections_total') && l.includes('dst_service="web"'));
    // The balancer picks at random between the two: connect until it has tried the dead one (bounded).
    for (let i = 0; i < 6 || (ejections().length === 0 && i < 60); i++) assert.equal(await through('web:9000', `ping ${i}`, `ping ${i}`), `open\nping ${i}`);
    assert.deepEqual(refusals, [], 'no connection failed: the one that met the dead endpoint went on to the live one');
    assert.equal(ejections().length, 1);
    assert.ok(Number(ejections()[0]!.split(' ').at(-1)) >= 1);
  });

  it('refuses a name outside the mesh when egress is denied, with its code', async () => {
    assert.equal(await through('elsewhere:80', '', 'refused'), 'refused denied\n');
  });

  it('refuses what is not host:port', async () => {
    assert.equal(await through('web', '', 'refused'), 'refused bad_request\n');
  });
});
