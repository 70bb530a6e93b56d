// mesh/1 framing: whatever way a connection's bytes are split across reads, every frame comes out
// whole, in order, and a DATA frame's payload comes out as its bytes with END on the last piece.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameReader } from '../src/proxy/mux.js';
import { ParseError } from '../src/proxy/h1-parse.js';

interface Frame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

function encode(f: Frame): Buffer {
  const h = Buffer.alloc(10);
  h[0] = f.type;
  h[1] = f.flags;
  h.writeUInt32BE(f.id, 2);
  h.writeUInt32BE(f.payload.length, 6);
  return Buffer.concat([h, f.payload]);
}

const frameArb = fc.record({
  type: fc.constantFrom(1, 2, 3, 4),
  flags: fc.constantFrom(0, 1),
  id: fc.integer({ min: 1, max: 99 }),
  payload: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
}).map((f): Frame => ({ ...f }));

describe('mesh/1 frame reader', () => {
  it('gives back every frame however the bytes are split', () => {
    fc.assert(fc.property(fc.array(frameArb, { maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 60 }), (frames, splits) => {
      const got: Frame[] = [];
      let cur: Frame | null = null;
      const r = new FrameReader({
        onFrame(type, flags, id, payload) {
          if (type !== 2) {
            assert.equal(cur, null, 'a frame came out in the middle of a DATA payload');
            got.push({ type, flags, id, payload: Buffer.from(payload) });
            return;
          }
          const want = frames[got.length]!;
          cur ??= { type, flags: 0, id, payload: Buffer.alloc(0) };
          assert.equal(id, want.id);
          assert.equal(cur.flags & 1, 0, 'END before the last piece');
          cur.payload = Buffer.concat([cur.payload, payload]);
          cur.flags = flags;
          if (cur.payload.length === want.payload.length) {
            got.push(cur);
            cur = null;
          } else assert.equal(flags & 1, 0, 'END on a piece that is not the last');
        },
      });
      const wire = Buffer.concat(frames.map(encode));
      let at = 0;
      for (const n of [...splits, wire.length]) {
        if (at >= wire.length) break;
        r.push(wire.subarray(at, at + n));
        at += n;
      }
      assert.equal(cur, null);
      assert.deepEqual(got, frames);
    }), { numRuns: 500 });
  });

  it('refuses a frame longer than its limit before reading it', () => {
    const r = new FrameReader({ onFrame: () => assert.fail('no frame expected') });
    const h = Buffer.alloc(10);
    h[0] = 1;
    h.writeUInt32BE(1, 2);
    h.writeUInt32BE(2 ** 30, 6);
    assert.throws(() => r.push(h), ParseError);
  });
});

