// Per-client fairness (the ingress): requests in flight are counted per client address, found once
// per connection, and a client past its share gets 429, so slow or greedy clients cannot take every
// in-flight slot of the endpoints behind.
import type { Socket } from 'node:net';
import { ProxyError, respondError, type Layer } from '../exchange.js';
import type { Res } from '../wire/h1-server.js';

const CLIENT = Symbol('mesh.client');

interface Client {
  readonly key: string;
  readonly home: Map<string, Client>;
  inflight: number;
  conns: number;
}

type Carrier = { [CLIENT]?: Client };

export class ClientShares {
  private readonly clients = new Map<string, Client>();

  constructor(readonly limit: number) {}

  /** On accept: the connection's client, kept while it has connections. */
  track(sock: Socket): void {
    const key = sock.remoteAddress ?? '';
    let c = this.clients.get(key);
    if (c === undefined) this.clients.set(key, (c = { key, home: this.clients, inflight: 0, conns: 0 }));
    c.conns++;
    (sock as Socket & Carrier)[CLIENT] = c;
    sock.once('close', () => {
      if (--c.conns === 0 && c.inflight === 0) this.clients.delete(key);
    });
  }

  readonly layer: Layer = (next) => (ex) => {
    const c = (ex.req.socket as Socket & Carrier)[CLIENT];
    if (c === undefined) return next(ex);
    if (c.inflight >= this.limit) {
      return respondError(ex, new ProxyError('too_many_requests', `client ${c.key} has ${c.inflight} requests in flight, its limit`));
    }
    c.inflight++;
    const res = ex.res as Res & Carrier;
    res[CLIENT] = c;
    res.once('close', release);
    next(ex);
  };
}

function release(this: Res & Carrier): void {
  const c = this[CLIENT]!;
  if (--c.inflight === 0 && c.conns === 0) c.home.delete(c.key);
}
