// histogram_quantile as Prometheus computes it (promql/quantile.go, bucketQuantile): linear
// interpolation inside the bucket holding the rank, 0 as the lower bound of the first bucket, and
// the upper bound of the last finite bucket when the rank falls in +Inf.

export interface Bucket {
  /** The bucket's inclusive upper bound (the `le` label), +Infinity for the last. */
  le: number;
  /** Cumulative count (or rate) of observations ≤ le. */
  count: number;
}

/** The q-quantile of cumulative buckets; NaN when there are no observations or no +Inf bucket. */
export function histogramQuantile(q: number, input: readonly Bucket[]): number {
  if (Number.isNaN(q)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  if (input.length === 0) return NaN;
  const sorted = [...input].sort((a, b) => a.le - b.le);
  if (sorted[sorted.length - 1]!.le !== Infinity) return NaN;
  const buckets = coalesce(sorted);
  correctPrecisionErrors(buckets, 1e-12);
  ensureMonotonic(buckets);
  if (buckets.length < 2) return NaN;
  const observations = buckets[buckets.length - 1]!.count;
  if (observations === 0 || Number.isNaN(observations)) return NaN;
  let rank = q * observations;
  // The first bucket (of all but +Inf) whose count reaches the rank, as sort.Search finds it.
  let b = 0;
  while (b < buckets.length - 1 && !(buckets[b]!.count >= rank)) b++;
  if (b === buckets.length - 1) return buckets[buckets.length - 2]!.le;
  if (b === 0 && buckets[0]!.le <= 0) return buckets[0]!.le;
  let start = 0;
  const end = buckets[b]!.le;
  let count = buckets[b]!.count;
  if (b > 0) {
    start = buckets[b - 1]!.le;
    count -= buckets[b - 1]!.count;
    rank -= buckets[b - 1]!.count;
  }
  return start + (end - start) * (rank / count);
}

function coalesce(sorted: Bucket[]): Bucket[] {
  const out: Bucket[] = [];
  for (const b of sorted) {
    const last = out[out.length - 1];
    if (last && last.le === b.le) last.count += b.count;
    else out.push({ le: b.le, count: b.count });
  }
  return out;
}

/** Float noise from summing rates can make counts dip by a hair: treat those as equal. */
function correctPrecisionErrors(buckets: Bucket[], tolerance: number): void {
  let prev = buckets[0]!.count;
  for (let i = 1; i < buckets.length; i++) {
    const curr = buckets[i]!.count;
    const delta = Math.abs(curr - prev);
    if (delta === 0) continue;
    if (delta / curr <= tolerance) buckets[i]!.count = prev;
    else prev = curr;
  }
}

/** Cumulative counts never decrease; where scrapes were inconsistent, take the envelope. */
function ensureMonotonic(buckets: Bucket[]): void {
  let max = buckets[0]!.count;
  for (let i = 1; i < buckets.length; i++) {
    if (buckets[i]!.count > max) max = buckets[i]!.count;
    else if (buckets[i]!.count < max) buckets[i]!.count = max;
  }
}

/** Index of the bucket a value falls in: the first bound ≥ value (bounds.length for +Inf). */
export function bucketIndex(value: number, bounds: readonly number[]): number {
  let i = 0;
  while (i < bounds.length && value > bounds[i]!) i++;
  return i;
}

/** The exact q-quantile of raw observations (nearest rank), to compare a histogram's estimate with. */
export function exactQuantile(q: number, values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[idx]!;
}
