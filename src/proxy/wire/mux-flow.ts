// mesh/1 flow control, as HTTP/2 does it: a stream's sender keeps within the peer's stream window
// and the connection's; its receiver credits both back as the consumer takes the data, and treats
// data past either window as a protocol error. A peer that stops reading makes our senders wait
// (the socket's 'drain' wakes them), never our memory grow.
import { keep } from './read-buffer.js';
import { T, END, Cap, WINDOW, CONN_WINDOW, MAX_DATA, MAX_STREAMS, MAX_WINDOW, type FrameWriter } from './mux-frames.js';

/** Told when a stream that had to wait may send again, and when what it held back has all gone out. */
export interface Drainable {
  drained(): void;
  flushed?(): void;
}

/** One connection's share of flow control: its windows both ways, and the streams waiting on them. */
export class ConnFlow {
  /** What the peer still lets us send on the connection (unbounded for a peer of the previous version). */
  sendWindow = CONN_WINDOW;
  /** What the peer may still send us before it overruns our connection window. */
  recvWindow = CONN_WINDOW;
  private owed = 0;
  /** Settled by the peer's first frame: SETTINGS (this version) or anything else (the previous one). */
  peerKnown = false;
  /** The peer keeps to our connection window and credits its own (it sent SETTINGS). */
  peerNew = false;
  peerMaxStreams = MAX_STREAMS;
  /** The peer takes Trailers frames (it said so in SETTINGS). */
  peerTrailers = false;
  /** The peer takes request heads with the UPGRADE flag (it said so in SETTINGS). */
  peerUpgrades = false;
  private readonly blocked = new Set<Sender>();

  /** `caps`: what this end announces it takes (Cap bits). */
  constructor(readonly w: FrameWriter, caps: number) {
    w.sock.on('drain', () => {
      // Everything queued went out: read the peer again and let waiting streams send.
      if (w.sock.isPaused()) w.sock.resume();
      this.wake();
    });
    w.settings(caps);
  }

  /** The peer's first frame: whether it is SETTINGS, and its payload. */
  hello(settings: boolean, payload: Buffer): void {
    this.peerKnown = true;
    this.peerNew = settings;
    if (settings) {
      if (payload.length >= 4) this.peerMaxStreams = Math.max(1, Math.min(payload.readUInt32BE(0), MAX_STREAMS));
      const caps = payload.length >= 8 ? payload.readUInt32BE(4) : 0;
      this.peerTrailers = (caps & Cap.Trailers) !== 0;
      this.peerUpgrades = (caps & Cap.Upgrade) !== 0;
    } else {
      // The previous version has no connection window: its stream windows are the only limit.
      this.sendWindow = Infinity;
      this.wake();
    }
  }

  /** A WINDOW frame for stream 0; false when it opens the window past its limit. */
  opened(n: number): boolean {
    if (!this.peerNew) return true;
    this.sendWindow += n;
    if (this.sendWindow > MAX_WINDOW) return false;
    this.wake();
    return true;
  }

  /** DATA arrived; false when it overran the connection window. */
  received(n: number): boolean {
    this.recvWindow -= n;
    return this.recvWindow >= 0;
  }

  /**
   * Received bytes we no longer hold: the peer may send as many again. A peer of this version may
   * only once it is told (so the window is exactly what it was credited); one of the previous
   * version is never told, and is held to what we hold.
   */
  release(n: number): void {
    if (n <= 0) return;
    if (!this.peerNew) {
      this.recvWindow += n;
      return;
    }
    this.owed += n;
    if (this.owed >= CONN_WINDOW / 4) {
      this.w.window(0, this.owed);
      this.recvWindow += this.owed;
      this.owed = 0;
    }
  }

  block(s: Sender): void {
    this.blocked.add(s);
  }

  unblock(s: Sender): void {
    this.blocked.delete(s);
  }

  private wake(): void {
    if (this.blocked.size === 0) return;
    const list = [...this.blocked];
    this.blocked.clear();
    for (const s of list) s.wake();
  }
}

/** Sending side of a stream: DATA frames within the windows, the rest held until they open. */
export class Sender {
  window = WINDOW;
  private held: Buffer[] | null = null;
  private endHeld = false;
  /** A Trailers frame that ends the stream once the data before it is out. */
  private trailer: Buffer | null = null;
  /** The source was told to wait (a write returned false) and gets a drain when the windows open. */
  private waiting = false;

  constructor(private readonly flow: ConnFlow, private readonly id: number, private readonly owner: Drainable) {}

  /** Queues a chunk (and the end, with trailers if given); false when the source should wait. */
  data(chunk: Buffer, end: boolean, trailer: Buffer | null = null): boolean {
    if (chunk.length > 0) (this.held ??= []).push(chunk);
    if (end) {
      this.endHeld = true;
      this.trailer = trailer;
    }
    this.pump();
    // Frames copy what they send; what waits for a window is kept as a copy if it is in a read buffer.
    const held = this.held;
    if (held !== null) held[held.length - 1] = keep(held[held.length - 1]!);
    if (this.open) return true;
    this.waiting = true;
    this.flow.block(this);
    return false;
  }

  private get open(): boolean {
    return this.held === null && this.window > 0 && !this.flow.w.congested;
  }

  private pump(): void {
    const held = this.held;
    const flow = this.flow;
    const w = flow.w;
    while (held !== null && held.length > 0 && this.window > 0 && flow.sendWindow > 0 && !w.congested) {
      const c = held[0]!;
      const n = Math.min(c.length, this.window, flow.sendWindow, MAX_DATA);
      if (n === c.length) held.shift();
      else held[0] = c.subarray(n);
      this.window -= n;
      flow.sendWindow -= n;
      const last = this.endHeld && held.length === 0 && this.trailer === null;
      w.frame(T.Data, last ? END : 0, this.id, n === c.length ? c : c.subarray(0, n));
      if (last) this.endHeld = false;
    }
    if (held !== null && held.length === 0) this.held = null;
    if (this.held === null && this.endHeld) {
      this.endHeld = false;
      const t = this.trailer;
      this.trailer = null;
      // Trailers are not flow-controlled (as HTTP/2's HEADERS): they follow the last DATA at once.
      if (t !== null) w.frame(T.Trailers, END, this.id, t);
      else w.frame(T.Data, END, this.id, null);
    }
    // Held back by the connection (its window, or a peer not reading), not by this stream's window.
    if (this.held !== null && this.window > 0) flow.block(this);
  }

  /** Nothing held back: everything (and the end, if given) is in frames. */
  get idle(): boolean {
    return this.held === null && !this.endHeld;
  }

  /** The peer opened this stream's window; false when past its limit (a protocol error). */
  opened(n: number): boolean {
    this.window += n;
    if (this.window > MAX_WINDOW) return false;
    this.wake();
    return true;
  }

  /** A window opened or the socket drained: send what waited, and let a waiting source go on. */
  wake(): void {
    this.pump();
    if (this.idle) this.owner.flushed?.();
    if (this.waiting && this.open) {
      this.waiting = false;
      this.owner.drained();
    } else if (this.waiting) this.flow.block(this);
  }

  /** The stream is over: nothing more goes out. */
  close(): void {
    this.held = null;
    this.endHeld = false;
    this.trailer = null;
    this.waiting = false;
    this.flow.unblock(this);
  }
}

/** Receiving side: enforces the stream's window, and credits it as the consumer takes the data. */
export class Receiver {
  private owed = 0;
  /** What the peer may still send on this stream. */
  private allowed = WINDOW;
  private closed = false;
  paused = false;

  constructor(private readonly flow: ConnFlow, private readonly id: number) {}

  /** DATA arrived; false when it overran the stream's window. */
  received(n: number): boolean {
    this.allowed -= n;
    return this.allowed >= 0;
  }

  consumed(n: number): void {
    this.owed += n;
    if (!this.paused && this.owed >= WINDOW / 4) this.credit();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    if (this.owed > 0) this.credit();
  }

  private credit(): void {
    if (this.closed) return;
    this.flow.w.window(this.id, this.owed);
    this.allowed += this.owed;
    this.flow.release(this.owed);
    this.owed = 0;
  }

  /** The stream is over: whatever it still held counts as released on the connection. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.flow.release(WINDOW - this.allowed);
  }
}
