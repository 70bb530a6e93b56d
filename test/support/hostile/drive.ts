// Sends one case's bytes through one side of the bed and waits, within a deadline, until it is over: the proxy
// closed the connection, or answered every request the client meant (and the app finished reading). On mesh/1 the
// bytes become one stream: the first head as a HEADERS frame, the first request's body (or the raw rest) as DATA.
import type net from 'node:net';
import { BodyDecoder, headEnd, parseResponseHead } from '../../../src/proxy/wire/h1-parse.js';
import type { Bed, Side } from './bed.js';
import { judge, reference, type Meaning, type Meant } from './oracle.js';

export interface Outcome {
  /** Status of each response the client got, in order. */
  statuses: number[];
  /** The deadline passed before the case was over (the proxy is waiting for more). */
  timedOut: boolean;
}

const poll = async (until: () => boolean, ms: number): Promise<boolean> => {
  const deadline = Date.now() + ms;
  while (!until()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 2));
  }
  return true;
};

/** Counts HTTP/1.1 responses on a connection (the proxy's own, well-formed output). */
function h1Responses(sock: net.Socket, methods: string[], statuses: number[]): void {
  let buf = Buffer.alloc(0);
  let body: BodyDecoder | null = null;
  const sink = { onBody() {}, onBodyEnd() {} };
  sock.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    for (;;) {
      if (body !== null) {
        const at = body.feed(buf, 0, sink);
        buf = buf.subarray(at);
        if (!body.done) return;
        body = null;
      }
      const end = headEnd(buf);
      if (end < 0) return;
      let status: number;
      const d = new BodyDecoder();
      try {
        const h = parseResponseHead(buf, end);
        status = h.status;
        if (status === 101) {
          statuses.push(status);
          buf = Buffer.alloc(0);
          return;
        }
        d.start(h, methods[statuses.length] === 'HEAD' || status === 204 || status === 304 || status < 200);
      } catch {
        statuses.push(-1);
        return;
      }
      buf = buf.subarray(end + 4);
      if (status >= 200) statuses.push(status);
      body = d;
    }
  });
}

function frame(type: number, flags: number, id: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(10);
  h[0] = type;
  h[1] = flags;
  h.writeUInt32BE(id, 2);
  h.writeUInt32BE(payload.length, 6);
  return Buffer.concat([h, payload]);
}

/** One mesh/1 stream carrying the case: its first head, then the body the client meant (or the raw rest). */
export function asMux(bytes: Buffer, meant: Meant[]): Buffer {
  const end = headEnd(bytes);
  if (end < 0) return frame(1, 1, 1, bytes);
  const head = bytes.subarray(0, end + 4);
  const body = meant.length > 0 ? meant[0]!.body : bytes.subarray(end + 4);
  if (body.length === 0) return frame(1, 1, 1, head);
  return Buffer.concat([frame(1, 0, 1, head), frame(2, 1, 1, body)]);
}

/** Counts mesh/1 responses: a HEADERS frame is one; a RESET ends the stream without. */
function muxResponses(sock: net.Socket, statuses: number[], over: () => void): void {
  let buf = Buffer.alloc(0);
  sock.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    while (buf.length >= 10) {
      const len = buf.readUInt32BE(6);
      if (buf.length < 10 + len) return;
      const type = buf[0]!;
      const flags = buf[1]!;
      const payload = buf.subarray(10, 10 + len);
      buf = buf.subarray(10 + len);
      if (type === 1) {
        const h = parseResponseHead(payload, headEnd(payload));
        if (h.status >= 200) statuses.push(h.status);
        if (flags & 1) over();
      } else if (type === 2 && flags & 1) over();
      else if (type === 3) over();
    }
  });
}

/** Runs one case on one side: the faults the oracle found (empty when it passed) and what the client saw. */
/** What the last few cases may still send the app (two hops behind): their requests not seen yet, and whether their bytes held something the client's parser refused. */
export interface Late {
  requests: Meant[];
  errors: boolean[];
}

const LATE_CASES = 3;

export async function runCase(bed: Bed, side: Side, bytes: Buffer, meaning?: Meaning, late: Late = { requests: [], errors: [] }): Promise<{ faults: string[]; outcome: Outcome; late: Late }> {
  let m = meaning ?? await reference(bytes);
  let meant = m.requests;
  const from = bed.backend.seen.length;
  const errorsFrom = bed.backend.errors.length;
  const sock = await bed.connect(side);
  const statuses: number[] = [];
  let closed = false;
  let streamOver = false;
  sock.on('close', () => (closed = true));
  sock.on('error', () => {});
  let wire = bytes;
  if (side === 'inbound-mux') {
    wire = asMux(bytes, meant);
    // On mesh/1 the stream's END says the body is whole, and no upgrade is ever made.
    meant = meant.slice(0, 1).map((r) => ({ ...r, complete: true, upgrade: false }));
    m = { requests: meant, error: m.error };
    muxResponses(sock, statuses, () => (streamOver = true));
  } else h1Responses(sock, meant.map((m) => m.method), statuses);
  sock.write(wire);
  const want = meant.filter((r) => r.complete).length;
  const over = () => closed || streamOver || statuses.includes(101) || (want > 0 && statuses.length >= want);
  const timedOut = !(await poll(over, want === 0 ? 300 : 1500));
  // The client goes: whatever the proxy still had open upstream is cut, and the app finishes reading.
  sock.destroy();
  await poll(() => bed.backend.inflight() === 0, 1000);
  const seen = bed.backend.seen.slice(from);
  const errors = bed.backend.errors.slice(errorsFrom);
  // The last cases' requests may come late, ahead of this one's.
  const v = judge({ requests: [...late.requests, ...m.requests], error: m.error || late.errors.includes(true) }, seen, errors, bed.identity[side], bed.denies[side] ? '/denied' : null);
  return { faults: v.faults, outcome: { statuses, timedOut }, late: { requests: v.rest.slice(-8), errors: [...late.errors, m.error].slice(-LATE_CASES) } };
}
