// The law behind the corpus, checked on generated input: whatever bytes a client sends to any side of a sidecar,
// they are refused, or they reach the app as the same requests (the ones an independent parser reads from them, in
// order, with the same bodies and end-to-end headers), under the identity the proxy vouches for and never on a path
// policy denies.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { makeCerts, SIDES, startBed, type Bed, type Side } from './support/hostile/bed.js';
import { runCase, type Late } from './support/hostile/drive.js';
import { hostileBytes } from './support/hostile/generate.js';

const RUNS = 100;

describe('any byte sequence through a sidecar', { concurrency: SIDES.length }, () => {
  const beds = new Map<Side, Bed>();
  before(async () => {
    const certs = await makeCerts();
    for (const side of SIDES) beds.set(side, await startBed(certs));
  });
  after(async () => {
    for (const bed of beds.values()) await bed.close();
  });

  for (const side of SIDES) {
    it(`is refused or reaches the app as the same requests (${side}, ${RUNS} runs)`, { timeout: 120_000 }, async () => {
      const bed = beds.get(side)!;
      let late: Late | undefined;
      await fc.assert(fc.asyncProperty(hostileBytes, async (bytes) => {
        const r = await runCase(bed, side, bytes, undefined, late);
        late = r.late;
        assert.deepEqual(r.faults, [], JSON.stringify(bytes.toString('latin1')));
      }), { numRuns: RUNS, endOnFailure: true });
    });
  }
});
