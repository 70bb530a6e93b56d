// State files are written atomically (temp file, fsync, rename) so a crash never leaves half a file.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MeshError } from './errors.js';

export function writeFileAtomic(path: string, data: string | Buffer, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fd = openSync(tmp, 'w', mode);
    try {
      writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

export function writeJsonAtomic(path: string, value: unknown, mode = 0o644): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n', mode);
}

/** Reads a JSON state file; undefined when absent, a MeshError naming the file when corrupt. */
export function readJson<T>(path: string, what = 'state file', fix = 'restore it, or remove it and run the command again'): T | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MeshError(`cannot read ${what} ${path}: ${(err as Error).message}`, 'check its permissions');
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new MeshError(`${what} ${path} is corrupt (not valid JSON)`, fix);
  }
}
