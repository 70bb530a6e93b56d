// mesh/1 flow control: a stream's sender keeps within the peer's window; its receiver credits the
// window back as the consumer takes the data.
import { T, END, WINDOW, MAX_DATA, type FrameWriter } from './mux-frames.js';

/** Sending side of a stream: DATA frames within the peer's window, the rest held until it opens. */
export class Sender {
  window = WINDOW;
  private held: Buffer[] | null = null;
  private endHeld = false;
  /** The source was told to wait (a write returned false) and gets a drain when the window opens. */
  private waiting = false;

  constructor(private readonly w: FrameWriter, private readonly id: number) {}

  /** Queues a chunk (and the end); false when the window is shut and the source should wait. */
  data(chunk: Buffer, end: boolean): boolean {
    if (chunk.length > 0) (this.held ??= []).push(chunk);
    if (end) this.endHeld = true;
    this.pump();
    const open = this.held === null && this.window > 0;
    if (!open) this.waiting = true;
    return open;
  }

  private pump(): void {
    const held = this.held;
    while (held !== null && held.length > 0 && this.window > 0) {
      const c = held[0]!;
      const n = Math.min(c.length, this.window, MAX_DATA);
      if (n === c.length) held.shift();
      else held[0] = c.subarray(n);
      this.window -= n;
      const last = this.endHeld && held.length === 0;
      this.w.frame(T.Data, last ? END : 0, this.id, n === c.length ? c : c.subarray(0, n));
      if (last) this.endHeld = false;
    }
    if (held !== null && held.length === 0) this.held = null;
    if (this.held === null && this.endHeld) {
      this.endHeld = false;
      this.w.frame(T.Data, END, this.id, null);
    }
  }

  /** Nothing held back: everything (and the end, if given) is in frames. */
  get idle(): boolean {
    return this.held === null && !this.endHeld;
  }

  /** The peer opened the window: send what waited; true when a waiting source may go on. */
  opened(n: number): boolean {
    this.window += n;
    this.pump();
    if (this.waiting && this.held === null && this.window > 0) {
      this.waiting = false;
      return true;
    }
    return false;
  }
}

/** Receiving side: credits the peer's window as the consumer takes the data, not before. */
export class Receiver {
  private owed = 0;
  paused = false;

  constructor(private readonly w: FrameWriter, private readonly id: number) {}

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
    this.w.window(this.id, this.owed);
    this.owed = 0;
  }
}

