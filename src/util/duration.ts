// Durations as users write them: 500ms, 30s, 5m, 24h.
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string, what = 'duration'): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) throw new Error(`${what} '${text}' is not a duration: use a number and a unit, like 500ms, 30s, 5m or 24h`);
  return Math.round(Number(m[1]) * UNITS[m[2]!]!);
}

export function parsePort(text: string, what = 'port', allowZero = false): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535 || (n === 0 && !allowZero)) {
    throw new Error(`${what} '${text}' is not a port number: use ${allowZero ? '0' : '1'}-65535`);
  }
  return n;
}
