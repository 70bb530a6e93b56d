// isoTime writes what Date.prototype.toISOString writes, without V8's time-zone lookup.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isoTime } from '../src/util/iso-time.js';

it('formats any instant of years 1970-9999 as toISOString does', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 253_402_300_799_999 }), (ms) => isoTime(ms) === new Date(ms).toISOString()), { numRuns: 20_000 });
});

it('gets leap days, year ends and the epoch right', () => {
  for (const s of ['1970-01-01T00:00:00.000Z', '2000-02-29T23:59:59.999Z', '2100-03-01T00:00:00.000Z', '2024-12-31T12:34:56.007Z', '9999-12-31T23:59:59.999Z']) {
    assert.equal(isoTime(Date.parse(s)), s);
  }
});
