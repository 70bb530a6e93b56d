// Adapts the stored route model (src/model/route.ts) to the rules the proxy compiles.
import type { Snapshot } from '../model/snapshot.js';
import type { RuleSpec } from './table.js';

export function rulesFromSnapshot(_s: Snapshot, _namespace: string, _service: string): RuleSpec[] {
  return [];
}
