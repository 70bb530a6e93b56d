// Adapts the stored route model (src/model/route.ts) to what the proxy compiles.
import { DEFAULT_RETRY_ON, durationMs, findRoute } from '../model/route.js';
import type { Snapshot } from '../model/snapshot.js';
import type { RouteSettings } from './table.js';

export function routeSettingsFromSnapshot(s: Snapshot, namespace: string, service: string): RouteSettings {
  const route = findRoute(s.config?.routes, namespace, service);
  if (!route) return { rules: [] };
  const spec = route.spec;
  return {
    rules: spec.rules.map((r) => ({
      matches: r.matches,
      backends: r.backends,
      timeoutMs: r.timeout ? durationMs(r.timeout) : undefined,
      retries: r.retries ? { attempts: r.retries.attempts, on: [...(r.retries.retryOn ?? DEFAULT_RETRY_ON)] } : undefined,
      fault: r.fault
        ? {
          delay: r.fault.delay ? { ms: durationMs(r.fault.delay.duration) ?? 0, percent: r.fault.delay.percent } : undefined,
          abort: r.fault.abort,
        }
        : undefined,
    })),
    retryBudget: spec.retryBudget ? { ratio: spec.retryBudget.retryRatio, minPerSecond: spec.retryBudget.minRetriesPerSecond } : undefined,
    consecutiveFailures: spec.failureAccrual?.consecutiveFailures,
  };
}
