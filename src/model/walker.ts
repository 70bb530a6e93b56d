// Walks an untrusted document (a route, a policy) collecting every error by its path, so
// validation reports all that is wrong at once.
import { checkName } from './snapshot.js';

export type Obj = Record<string, unknown>;

export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return `'${v}'`;
  if (Array.isArray(v)) return 'a list';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/** Collects errors by path while walking an untrusted document. */
export class Walker {
  readonly errors: string[] = [];
  readonly warnings: string[] = [];
  err(path: string, msg: string): void {
    this.errors.push(path ? `${path}: ${msg}` : msg);
  }
  obj(v: unknown, path: string, fields: string[]): Obj | undefined {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      this.err(path, `must be an object (got ${describe(v)})`);
      return undefined;
    }
    for (const k of Object.keys(v)) {
      if (!fields.includes(k)) this.err(path ? `${path}.${k}` : k, `unknown field (known: ${fields.join(', ')})`);
    }
    return v as Obj;
  }
  int(v: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.err(path, `must be an integer ${max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `from ${min} to ${max}`} (got ${describe(v)})`);
      return undefined;
    }
    return v;
  }
  num(v: unknown, path: string, min: number, max: number): number | undefined {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      this.err(path, `must be a number from ${min} to ${max} (got ${describe(v)})`);
      return undefined;
    }
    return v;
  }
  str(v: unknown, path: string): string | undefined {
    if (typeof v !== 'string') {
      this.err(path, `must be a string (got ${describe(v)})`);
      return undefined;
    }
    return v;
  }
  name(v: unknown, path: string, what: string): string | undefined {
    const s = this.str(v, path);
    if (s === undefined) return undefined;
    try {
      return checkName(s, what);
    } catch (e) {
      this.err(path, (e as Error).message);
      return undefined;
    }
  }
  list(v: unknown, path: string, nonEmpty: string): unknown[] | undefined {
    if (!Array.isArray(v)) {
      this.err(path, `must be a list (got ${describe(v)})`);
      return undefined;
    }
    if (v.length === 0) {
      this.err(path, nonEmpty);
      return undefined;
    }
    return v;
  }
}
