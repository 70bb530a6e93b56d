// ISO 8601 UTC timestamps without Date's formatting: V8 looks up the host's time zone (ICU's zone
// data, ~1 MB of the node binary paged into RSS) for toISOString and even the getUTC* getters, and
// a sidecar prints times in its records and logs. Same output as Date.prototype.toISOString for
// years 0-9999.

const pad2 = (n: number): string => (n < 10 ? `0${n}` : `${n}`);

/** `ms` since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`. */
export function isoTime(ms: number = Date.now()): string {
  const days = Math.floor(ms / 86_400_000);
  let rest = ms - days * 86_400_000;
  // Civil date from days since 1970-01-01 (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = Math.floor(rest / 1000);
  const milli = rest - s * 1000;
  return `${year}-${pad2(month)}-${pad2(day)}T${pad2(h)}:${pad2(m)}:${pad2(s)}.${milli < 100 ? (milli < 10 ? '00' : '0') : ''}${milli}Z`;
}
