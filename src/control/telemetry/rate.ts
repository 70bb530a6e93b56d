// How much a counter grew over a time window, from its scraped samples. Like Prometheus's
// increase(), a drop between two samples is a counter reset (the proxy restarted) and counts as
// growth from zero. Unlike it, we do not extrapolate to the window's edges: the value at the
// window's start is interpolated between the samples either side of it, so a window that covers
// a burst of traffic counts exactly the requests in it, and steady traffic gives its exact rate.

export interface Points {
  /** Sample times (ms), ascending. */
  t: readonly number[];
  v: readonly number[];
}

/** Growth of the counter over (start, end]. */
export function increase(p: Points, start: number, end: number): number {
  const n = p.t.length;
  let i = 0;
  while (i < n && p.t[i]! <= start) i++;
  if (i === n || p.t[i]! > end) {
    // No sample inside the window; the window may still sit between two samples.
    if (i === 0 || i === n) return 0;
    return grow(p.v[i - 1]!, p.v[i]!) * (end - start) / (p.t[i]! - p.t[i - 1]!);
  }
  let total = 0;
  if (i > 0) {
    // Only the part of the segment that lies inside the window.
    total += grow(p.v[i - 1]!, p.v[i]!) * (p.t[i]! - start) / (p.t[i]! - p.t[i - 1]!);
  }
  for (let j = i + 1; j < n && p.t[j]! <= end; j++) total += grow(p.v[j - 1]!, p.v[j]!);
  return total;
}

/** Growth between two consecutive samples: a drop means the counter restarted from zero. */
export function grow(prev: number, cur: number): number {
  return cur >= prev ? cur - prev : cur;
}

/** The last value at or before `at`, for gauges. */
export function valueAt(p: Points, at: number): number | undefined {
  let v: number | undefined;
  for (let i = 0; i < p.t.length && p.t[i]! <= at; i++) v = p.v[i];
  return v;
}
