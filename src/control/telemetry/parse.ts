// Parses the Prometheus text exposition format (version 0.0.4): what every proxy serves at /metrics.
// Strict enough to report a broken scrape with its line number, lenient about whitespace.

export type Labels = Record<string, string>;

export interface Sample {
  name: string;
  labels: Labels;
  value: number;
  /** The optional sample timestamp (ms since the epoch); proxies leave it out. */
  timestampMs?: number;
}

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Exposition {
  samples: Sample[];
  /** # TYPE lines, by metric family name. */
  types: Map<string, MetricType>;
}

export class ParseError extends Error {
  constructor(readonly line: number, message: string) {
    super(`line ${line}: ${message}`);
  }
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const TYPES = new Set<MetricType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export function parseValue(text: string): number {
  switch (text) {
    case '+Inf': case 'Inf': case '+inf': case 'inf': return Infinity;
    case '-Inf': case '-inf': return -Infinity;
    case 'NaN': case 'nan': return NaN;
  }
  // Number('') is 0 and Number('0x10') is 16: neither is a sample value.
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`'${text}' is not a number`);
  return Number(text);
}

export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, MetricType>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '').trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s*TYPE\s+(\S+)\s+(\S+)\s*$/.exec(line);
      if (m) {
        if (!TYPES.has(m[2] as MetricType)) throw new ParseError(i + 1, `unknown metric type '${m[2]}'`);
        types.set(m[1]!, m[2] as MetricType);
      }
      continue; // HELP and other comments
    }
    try {
      samples.push(parseSampleLine(line));
    } catch (err) {
      throw new ParseError(i + 1, (err as Error).message);
    }
  }
  return { samples, types };
}

function parseSampleLine(line: string): Sample {
  const nm = NAME_RE.exec(line);
  if (!nm) throw new Error('a sample line starts with a metric name');
  const name = nm[0];
  let pos = name.length;
  const labels: Labels = {};
  if (line[pos] === '{') {
    pos++;
    for (;;) {
      pos = skipSpaces(line, pos);
      if (line[pos] === '}') {
        pos++;
        break;
      }
      const ln = LABEL_RE.exec(line.slice(pos));
      if (!ln) throw new Error(`bad label name at column ${pos + 1}`);
      pos = skipSpaces(line, pos + ln[0].length);
      if (line[pos] !== '=') throw new Error(`expected '=' after label ${ln[0]}`);
      pos = skipSpaces(line, pos + 1);
      if (line[pos] !== '"') throw new Error(`expected a quoted value for label ${ln[0]}`);
      pos++;
      let value = '';
      for (;;) {
        const c = line[pos];
        if (c === undefined) throw new Error(`unterminated value for label ${ln[0]}`);
        pos++;
        if (c === '"') break;
        if (c === '\\') {
          const e = line[pos++];
          if (e === 'n') value += '\n';
          else if (e === '\\' || e === '"') value += e;
          else throw new Error(`bad escape \\${e ?? ''} in label ${ln[0]}`);
        } else value += c;
      }
      if (Object.hasOwn(labels, ln[0])) throw new Error(`label ${ln[0]} appears twice`);
      labels[ln[0]] = value;
      pos = skipSpaces(line, pos);
      if (line[pos] === ',') pos++;
      else if (line[pos] !== '}') throw new Error(`expected ',' or '}' after label ${ln[0]}`);
    }
  }
  if (pos < line.length && line[pos] !== ' ' && line[pos] !== '\t') throw new Error(`unexpected '${line[pos]}' after the metric name`);
  const rest = line.slice(pos).trim().split(/[ \t]+/);
  if (rest.length === 0 || rest[0] === '') throw new Error(`no value for ${name}`);
  if (rest.length > 2) throw new Error(`unexpected text after the value of ${name}`);
  const value = parseValue(rest[0]!);
  const sample: Sample = { name, labels, value };
  if (rest.length === 2) {
    if (!/^-?\d+$/.test(rest[1]!)) throw new Error(`timestamp '${rest[1]}' is not an integer`);
    sample.timestampMs = Number(rest[1]);
  }
  return sample;
}

function skipSpaces(s: string, pos: number): number {
  while (s[pos] === ' ' || s[pos] === '\t') pos++;
  return pos;
}

/** The family a sample belongs to: a histogram's _bucket/_sum/_count series are its family's. */
export function familyOf(name: string, types: Map<string, MetricType>): string {
  if (types.has(name)) return name;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      const t = types.get(base);
      if (t === 'histogram' || t === 'summary') return base;
    }
  }
  return name;
}

/** Whether a sample only ever goes up (until its process restarts). */
export function isCounter(name: string, types: Map<string, MetricType>): boolean {
  const family = familyOf(name, types);
  const t = types.get(family);
  if (t === 'counter') return true;
  if (t === 'histogram' || t === 'summary') return family !== name; // _bucket, _sum, _count; not quantiles
  if (t === 'gauge') return false;
  return /_total$/.test(name);
}
