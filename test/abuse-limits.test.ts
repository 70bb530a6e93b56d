// The admission limits alone, with fake exchanges: the inbound app-connection gate (a cap, a
// bounded queue, half of each per client) and the ingress's per-client in-flight share.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { Exchange } from '../src/proxy/exchange.js';
import { Gate } from '../src/proxy/gate.js';
import { ClientShares } from '../src/proxy/layers/fair.js';
import type { Req, Res } from '../src/proxy/wire/h1-server.js';
import { RequestStats } from '../src/proxy/metrics.js';
import { ERROR_INDEX } from '../src/proxy/errors.js';

class FakeRes extends EventEmitter {
  statusCode = 0;
  headersSent = false;
  writableFinished = false;
  destroyed = false;
  writeHead(status: number): this {
    this.statusCode = status;
    return this;
  }
  end(): void {
    this.headersSent = true;
    this.writableFinished = true;
    this.emit('close');
  }
}

const stats = new RequestStats('');
const sockets = new Map<string, Socket>();
const sock = (client: string): Socket => {
  let s = sockets.get(client);
  if (!s) sockets.set(client, (s = Object.assign(new EventEmitter(), { remoteAddress: client }) as unknown as Socket));
  return s;
};
const exchange = (client: string) => new Exchange({ socket: sock(client), header: () => undefined } as unknown as Req, new FakeRes() as unknown as Res, stats);

describe('the app-connection gate', () => {
  it('runs up to its limit, queues up to its queue, answers 503 beyond, and gives each client at most half of either', () => {
    const ran: Exchange[] = [];
    const gate = new Gate(4, 4, 'app connections');
    gate.run = (ex) => ran.push(ex);
    for (const c of ['a', 'b']) gate.attach(sock(c), c);
    const a = Array.from({ length: 6 }, () => exchange('a'));
    for (const ex of a) gate.enter(ex);
    // a: 2 run (half of 4), 2 wait (half of 4), 2 refused.
    assert.equal(ran.length, 2);
    assert.equal(gate.queued, 2);
    assert.deepEqual(a.map((ex) => ex.res.statusCode), [0, 0, 0, 0, 503, 503]);
    assert.deepEqual(a.map((ex) => ex.error), [null, null, null, null, 'overloaded', 'overloaded']);
    assert.equal(stats.errors[ERROR_INDEX.overloaded], 2);
    const b = Array.from({ length: 2 }, () => exchange('b'));
    for (const ex of b) gate.enter(ex);
    assert.equal(ran.length, 4, 'another client gets the other half at once');
    // One of a's ends: the next of a's waiting takes its slot, not more than a's share.
    gate.leave(a[0]!);
    assert.equal(ran.length, 5);
    assert.equal(ran[4], a[2]);
  });

  it('skips a waiting exchange whose client went away', () => {
    const ran: Exchange[] = [];
    const gate = new Gate(2, 4, 'app connections');
    gate.run = (ex) => ran.push(ex);
    gate.attach(sock('c'), 'c');
    gate.attach(sock('d'), 'd');
    const [c1, d1, c2, c3] = [exchange('c'), exchange('d'), exchange('c'), exchange('c')];
    for (const ex of [c1!, d1!, c2!, c3!]) gate.enter(ex);
    (c2!.res as unknown as FakeRes).destroyed = true;
    gate.leave(c1!);
    assert.deepEqual(ran, [c1, d1, c3]);
    assert.equal(gate.queued, 0);
  });
});

describe('the ingress\'s per-client share', () => {
  it('answers 429 past a client\'s share, counts another client apart, and frees a slot when a response closes', () => {
    const shares = new ClientShares(2);
    for (const c of ['10.0.0.1', '10.0.0.2']) shares.track(sock(c));
    const passed: Exchange[] = [];
    const h = shares.layer((ex) => passed.push(ex));
    const first = Array.from({ length: 3 }, () => exchange('10.0.0.1'));
    for (const ex of first) h(ex);
    assert.deepEqual(first.map((ex) => ex.res.statusCode), [0, 0, 429]);
    assert.equal(first[2]!.error, 'too_many_requests');
    const other = exchange('10.0.0.2');
    h(other);
    assert.equal(passed.length, 3);
    first[0]!.res.emit('close');
    const again = exchange('10.0.0.1');
    h(again);
    assert.equal(again.res.statusCode, 0, 'a freed slot is taken again');
    assert.equal(passed.length, 4);
  });
});
