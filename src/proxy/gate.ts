// Admission with a bound (the inbound side's app connections, one per exchange in flight): at most
// `limit` run at once, the next `queue` wait in order, and beyond that the answer is 503 at once.
// Each client (a peer identity) may hold half of either, so one caller that never lets go of its
// requests cannot take every app connection from the others.
import type { Socket } from 'node:net';
import { ProxyError, respondError, type Exchange, type Handler } from './exchange.js';

/** One client's part of the gate. */
export interface Share {
  active: number;
  waiting: number;
}

const SHARE = Symbol('mesh.share');
type Carrier = { [SHARE]?: Share };

export class Gate {
  active = 0;
  private readonly queue: Exchange[] = [];
  private readonly shares = new Map<string, Share>();
  private readonly perClient: number;
  private readonly perClientQueue: number;

  /** What an admitted exchange runs: the layer below the gate (see layers/admit.ts). */
  run: Handler = () => {};

  constructor(readonly limit: number, readonly queueLimit: number, private readonly what: string) {
    this.perClient = Math.max(1, Math.floor(limit / 2));
    this.perClientQueue = Math.max(1, Math.floor(queueLimit / 2));
  }

  /** On accept: whose share a connection's requests count against (identities are few: kept). */
  attach(sock: Socket, client: string): void {
    let s = this.shares.get(client);
    if (s === undefined) this.shares.set(client, (s = { active: 0, waiting: 0 }));
    (sock as Socket & Carrier)[SHARE] = s;
  }

  private shareOf(ex: Exchange): Share {
    return (ex.req.socket as Socket & Carrier)[SHARE] ?? ANON;
  }

  get queued(): number {
    return this.queue.length;
  }

  enter(ex: Exchange): void {
    const s = this.shareOf(ex);
    if (this.active < this.limit && s.active < this.perClient) {
      this.active++;
      s.active++;
      this.run(ex);
    } else if (this.queue.length < this.queueLimit && s.waiting < this.perClientQueue) {
      s.waiting++;
      this.queue.push(ex);
    } else respondError(ex, new ProxyError('overloaded', `${this.what}: ${this.active} in flight, ${this.queue.length} waiting (this client: ${s.active} and ${s.waiting})`));
  }

  /** An upgraded connection holds an app connection for its life: it takes a slot now or none (no queue). */
  hold(sock: Socket): boolean {
    const s = (sock as Socket & Carrier)[SHARE] ?? ANON;
    if (this.active >= this.limit || s.active >= this.perClient) return false;
    this.active++;
    s.active++;
    return true;
  }

  /** An upgraded connection ended: its slot goes to the queue as an exchange's would. */
  release(sock: Socket): void {
    this.free((sock as Socket & Carrier)[SHARE] ?? ANON);
  }

  /** An exchange let go of its slot: the longest-waiting one whose client is under its share takes it. */
  leave(ex: Exchange): void {
    this.free(this.shareOf(ex));
  }

  private free(share: Share): void {
    this.active--;
    share.active--;
    for (let i = 0; i < this.queue.length && this.active < this.limit;) {
      const next = this.queue[i]!;
      const s = this.shareOf(next);
      // Its client went away while it waited.
      const gone = next.res.destroyed || next.res.writableFinished;
      if (!gone && s.active >= this.perClient) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      s.waiting--;
      if (gone) continue;
      this.active++;
      s.active++;
      this.run(next);
    }
  }
}

const ANON: Share = { active: 0, waiting: 0 };
