// histogram_quantile against the values Prometheus's own test data gives, and the window maths.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { bucketIndex, exactQuantile, histogramQuantile, type Bucket } from '../src/control/telemetry/quantile.js';
import { increase, valueAt } from '../src/control/telemetry/rate.js';
import { LATENCY_BUCKETS_MS } from '../src/proxy/metrics.js';

const b = (pairs: [number, number][]): Bucket[] => pairs.map(([le, count]) => ({ le, count }));
// promql/testdata/histograms.test at 50m: cumulative counts of the two test histograms.
const positive = b([[0.1, 50], [0.2, 70], [1, 110], [Infinity, 120]]);
const negative = b([[-0.2, 10], [-0.1, 20], [0.3, 20], [Infinity, 30]]);

describe('histogramQuantile', () => {
  const cases: { name: string; q: number; buckets: Bucket[]; expected: number }[] = [
    { name: 'a quantile below 0', q: -0.1, buckets: positive, expected: -Infinity },
    { name: 'a quantile above 1', q: 1.01, buckets: positive, expected: Infinity },
    { name: 'q=0 in a positive lowest bucket (0 is its lower bound)', q: 0, buckets: positive, expected: 0 },
    { name: 'q=0 in a negative lowest bucket (its upper bound)', q: 0, buckets: negative, expected: -0.2 },
    { name: 'q=1 (the highest finite bound)', q: 1, buckets: positive, expected: 1 },
    { name: 'q=1 of the negative histogram', q: 1, buckets: negative, expected: 0.3 },
    { name: 'q=0.2, interpolated in the first bucket', q: 0.2, buckets: positive, expected: 0.048 },
    { name: 'q=0.2 of the negative histogram', q: 0.2, buckets: negative, expected: -0.2 },
    { name: 'q=0.5, interpolated in the second bucket', q: 0.5, buckets: positive, expected: 0.15 },
    { name: 'q=0.5 of the negative histogram', q: 0.5, buckets: negative, expected: -0.15 },
    { name: 'q=0.8, interpolated in the third bucket', q: 0.8, buckets: positive, expected: 0.72 },
    { name: 'q=0.8 falling in +Inf', q: 0.8, buckets: negative, expected: 0.3 },
    { name: 'buckets given out of order', q: 0.5, buckets: [positive[2]!, positive[0]!, positive[3]!, positive[1]!], expected: 0.15 },
    { name: 'duplicate bounds, coalesced', q: 0.5, buckets: b([[0.1, 25], [0.1, 25], [0.2, 70], [1, 110], [Infinity, 120]]), expected: 0.15 },
    { name: 'non-monotonic counts, taken as their envelope', q: 0.7, buckets: b([[1, 4], [2, 12], [4, 6], [8, 20], [Infinity, 20]]), expected: 5 },
    { name: 'rates rather than counts', q: 0.99, buckets: b([[1, 0.5], [2, 1.5], [Infinity, 2]]), expected: 2 },
    { name: 'the mesh buckets: p50 of uniform 0..10 ms', q: 0.5, buckets: b([[1, 10], [2, 20], [5, 50], [10, 100], [Infinity, 100]]), expected: 5 },
  ];
  for (const c of cases) {
    it(`gives ${c.expected} for ${c.name}`, () => {
      const got = histogramQuantile(c.q, c.buckets);
      if (Number.isFinite(c.expected)) assert.ok(Math.abs(got - c.expected) < 1e-9, `${got} ≠ ${c.expected}`);
      else assert.equal(got, c.expected);
    });
  }

  const nan: { name: string; buckets: Bucket[]; q?: number }[] = [
    { name: 'no buckets', buckets: [] },
    { name: 'no +Inf bucket', buckets: b([[1, 1], [2, 2]]) },
    { name: 'only the +Inf bucket', buckets: b([[Infinity, 5]]) },
    { name: 'no observations', buckets: b([[1, 0], [Infinity, 0]]) },
    { name: 'a NaN quantile', buckets: positive, q: NaN },
  ];
  for (const c of nan) it(`is NaN with ${c.name}`, () => assert.ok(Number.isNaN(histogramQuantile(c.q ?? 0.5, c.buckets))));

  it('always lands in the bucket that holds the rank (property)', () => {
    fc.assert(fc.property(fc.array(fc.double({ min: 0, max: 70_000, noNaN: true }), { minLength: 1, maxLength: 300 }), fc.double({ min: 0.01, max: 1, noNaN: true }), (values, q) => {
      const counts = LATENCY_BUCKETS_MS.map((le) => ({ le, count: values.filter((v) => v <= le).length }));
      counts.push({ le: Infinity, count: values.length });
      const est = histogramQuantile(q, counts);
      const exact = exactQuantile(q, values);
      const i = bucketIndex(exact, LATENCY_BUCKETS_MS);
      if (i === LATENCY_BUCKETS_MS.length) return est === LATENCY_BUCKETS_MS[i - 1];
      const lower = i === 0 ? 0 : LATENCY_BUCKETS_MS[i - 1]!;
      return est >= lower - 1e-9 && est <= LATENCY_BUCKETS_MS[i]! + 1e-9;
    }));
  });
});

describe('counter increase over a window', () => {
  const p = (pairs: [number, number][]) => ({ t: pairs.map((x) => x[0]), v: pairs.map((x) => x[1]) });
  const cases: { name: string; points: [number, number][]; start: number; end: number; expected: number }[] = [
    { name: 'last minus first when samples sit on the edges', points: [[0, 10], [10, 20], [20, 50]], start: 0, end: 20, expected: 40 },
    { name: 'the part of a segment inside the window', points: [[0, 0], [10, 100], [20, 200]], start: 5, end: 20, expected: 150 },
    { name: 'a reset: the counter restarted from zero', points: [[0, 90], [10, 100], [20, 5], [30, 15]], start: 0, end: 30, expected: 10 + 5 + 10 },
    { name: 'a reset in the segment the window starts in', points: [[0, 100], [10, 40], [20, 60]], start: 5, end: 20, expected: 20 + 20 },
    { name: 'nothing when every sample is older than the window', points: [[0, 1], [10, 2]], start: 10, end: 30, expected: 0 },
    { name: 'a window between two samples', points: [[0, 0], [10, 100]], start: 2, end: 4, expected: 20 },
    { name: 'a series that starts inside the window', points: [[10, 5], [20, 8]], start: 0, end: 20, expected: 3 },
    { name: 'a single sample', points: [[10, 5]], start: 0, end: 20, expected: 0 },
    { name: 'samples after the end are ignored', points: [[0, 0], [10, 10], [20, 1000]], start: 0, end: 10, expected: 10 },
  ];
  for (const c of cases) {
    it(`counts ${c.name}`, () => assert.ok(Math.abs(increase(p(c.points), c.start, c.end) - c.expected) < 1e-9, `${increase(p(c.points), c.start, c.end)}`));
  }

  it('never counts less than a burst the window covers, whatever the scrape timing (property)', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 0, max: 999 }), (n, offset) => {
      // Scrapes every 1000 ms; a burst of n requests between 10 s and 20 s; the window covers it.
      const t: number[] = [];
      const v: number[] = [];
      for (let s = offset; s < 40_000; s += 1000) {
        t.push(s);
        v.push(s < 10_000 ? 0 : s < 20_000 ? Math.floor((n * (s - 10_000)) / 10_000) : n);
      }
      return Math.abs(increase({ t, v }, 8_000, 39_000) - n) < 1e-9;
    }));
  });

  it('reads a gauge at a time', () => {
    assert.equal(valueAt(p([[0, 1], [10, 4]]), 5), 1);
    assert.equal(valueAt(p([[0, 1], [10, 4]]), 10), 4);
    assert.equal(valueAt(p([[5, 1]]), 0), undefined);
  });
});
