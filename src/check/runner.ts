// Checks are data: ordered categories of checkers, each a description, a hint anchor, a severity
// and a function that throws what is wrong. One runner executes them (retrying the retryable ones
// until --wait passes), and one renderer (src/ui/check.ts) prints the results, as Linkerd's
// pkg/healthcheck does.

export type CheckStatus = 'success' | 'warning' | 'error';

export interface Checker<C> {
  description: string;
  /** The description when the state makes the static one untrue (e.g. "a mesh is already installed"). */
  describe?(ctx: C): string | undefined;
  /** Anchor on the checks page: https://mesh.dev/checks#<hint>. */
  hint: string;
  /** A failed warning prints ‼ and does not fail the run. */
  warning?: boolean;
  /** A failure skips every check after it (nothing further can be asked). */
  fatal?: boolean;
  /** The state may still change by itself (a process starting): retried until the wait passes. */
  retry?: boolean;
  /** Throws an Error whose message says what is wrong (several lines allowed). */
  check(ctx: C): Promise<void> | void;
}

export interface Category<C> {
  name: string;
  checkers: Checker<C>[];
}

export interface CheckResult {
  description: string;
  hint: string;
  result: CheckStatus;
  error?: string;
}

export interface CategoryResult {
  categoryName: string;
  checks: CheckResult[];
}

export interface CheckReport {
  success: boolean;
  categories: CategoryResult[];
}

export interface RunOptions {
  /** How long retryable checks may keep failing before they count (ms; 0: one try). */
  waitMs?: number;
  retryEveryMs?: number;
  /** Called as results come in, so a terminal sees them at once. */
  onCategory?: (name: string) => void;
  onResult?: (r: CheckResult) => void;
  onRetry?: (c: { description: string; error: string }) => void;
}

export const HINT_BASE = 'https://mesh.dev/checks#';

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export async function runChecks<C>(categories: Category<C>[], ctx: C, o: RunOptions = {}): Promise<CheckReport> {
  const deadline = Date.now() + (o.waitMs ?? 0);
  const report: CheckReport = { success: true, categories: [] };
  for (const cat of categories) {
    const out: CategoryResult = { categoryName: cat.name, checks: [] };
    report.categories.push(out);
    o.onCategory?.(cat.name);
    for (const c of cat.checkers) {
      let error: string | undefined;
      for (;;) {
        try {
          await c.check(ctx);
          error = undefined;
        } catch (err) {
          error = message(err) || 'failed';
        }
        if (error === undefined || !c.retry || Date.now() >= deadline) break;
        o.onRetry?.({ description: c.description, error });
        await new Promise((r) => setTimeout(r, Math.min(o.retryEveryMs ?? 1000, Math.max(0, deadline - Date.now()))));
      }
      const r: CheckResult = { description: (error !== undefined && c.describe?.(ctx)) || c.description, hint: HINT_BASE + c.hint, result: error === undefined ? 'success' : c.warning ? 'warning' : 'error' };
      if (error !== undefined) r.error = error;
      out.checks.push(r);
      o.onResult?.(r);
      if (r.result === 'error') report.success = false;
      if (r.result === 'error' && c.fatal) return report;
    }
  }
  return report;
}
