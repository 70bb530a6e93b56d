// Golden files: compare rendered output with test/golden/NAME; UPDATE_GOLDEN=1 rewrites them (review the diff).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './mesh.js';

export const GOLDEN_DIR = join(ROOT, 'test', 'golden');

export function golden(name: string, actual: string): void {
  const path = join(GOLDEN_DIR, name);
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(GOLDEN_DIR, { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  assert.ok(existsSync(path), `golden file test/golden/${name} is missing: run with UPDATE_GOLDEN=1 to create it`);
  assert.equal(actual, readFileSync(path, 'utf8'), `output differs from test/golden/${name} (UPDATE_GOLDEN=1 regenerates it)`);
}

export const fixture = (...p: string[]) => readFileSync(join(ROOT, 'test', 'fixtures', ...p), 'utf8');
