// A service's traffic policy, compiled once per config push: ordered rules that match requests
// and split them over version subsets, with timeouts, retries (bounded by a budget) and faults.
import type { Req } from './wire/h1-server.js';
import type { Target } from './balancer.js';
import type { Exchange } from './exchange.js';

export interface CompiledMatch {
  headers: { name: string; exact?: string; regex?: RegExp }[];
  pathPrefix?: string;
  method?: string;
}

export interface CompiledBackend {
  version: string;
  weight: number;
  target: Target;
}

export interface CompiledRule {
  /** null for the default rule, which matches everything. */
  matches: CompiledMatch[] | null;
  backends: CompiledBackend[];
  totalWeight: number;
  timeoutMs: number;
  /** grpcOn: the gRPC statuses retried, a bit per code (1 << code); 0 for none. */
  retry: { attempts: number; on5xx: boolean; onConnect: boolean; grpcOn: number } | null;
  /** abortGrpc: the gRPC status an abort answers gRPC callers with (0: the one abortStatus means). */
  fault: { delayMs: number; delayPercent: number; abortStatus: number; abortGrpc: number; abortPercent: number } | null;
}

/**
 * Linkerd's retry budget: retries may add `ratio` of the request rate, plus a floor per second,
 * over a sliding window, so a failing service never sees a retry storm.
 */
export class RetryBudget {
  private readonly requests = new Float64Array(10);
  private readonly retries = new Float64Array(10);
  private slot = 0;
  private slotSec = 0;

  constructor(private readonly ratio = 0.2, private readonly minPerSecond = 10) {}

  private roll(now: number): void {
    const sec = Math.floor(now / 1000);
    if (sec === this.slotSec) return;
    const steps = Math.min(sec - this.slotSec, 10);
    for (let k = 0; k < steps; k++) {
      this.slot = (this.slot + 1) % 10;
      this.requests[this.slot] = 0;
      this.retries[this.slot] = 0;
    }
    this.slotSec = sec;
  }

  deposit(now: number): void {
    this.roll(now);
    this.requests[this.slot]!++;
  }

  /** Takes a retry from the budget when there is one left. */
  withdraw(now: number): boolean {
    this.roll(now);
    let req = 0;
    let ret = 0;
    for (let k = 0; k < 10; k++) {
      req += this.requests[k]!;
      ret += this.retries[k]!;
    }
    if (ret + 1 > req * this.ratio + this.minPerSecond * 10) return false;
    this.retries[this.slot]!++;
    return true;
  }
}

export class ServiceRouter {
  rules: CompiledRule[] = [];
  budget = new RetryBudget();
  private budgetKey = '0.2/10';
  /** Version subsets, views on the service's endpoints. */
  readonly subsets = new Map<string, Target>();

  constructor(readonly target: Target) {}

  /** A new budget only when its parameters change: config pushes keep the window's counts. */
  setBudget(ratio: number, minPerSecond: number): void {
    const key = `${ratio}/${minPerSecond}`;
    if (key === this.budgetKey) return;
    this.budgetKey = key;
    this.budget = new RetryBudget(ratio, minPerSecond);
  }

  /** The first rule that matches, or null when the service has no route (all endpoints, evenly). */
  match(req: Req, path: string): CompiledRule | null {
    const rules = this.rules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      if (r.matches === null || matchesAny(r.matches, req, path)) return r;
    }
    return null;
  }
}

function matchesAny(ms: CompiledMatch[], req: Req, path: string): boolean {
  for (let i = 0; i < ms.length; i++) {
    const m = ms[i]!;
    if (m.method !== undefined && req.method !== m.method) continue;
    if (m.pathPrefix !== undefined && !path.startsWith(m.pathPrefix)) continue;
    let ok = true;
    for (let h = 0; h < m.headers.length && ok; h++) {
      const hm = m.headers[h]!;
      const value = req.header(hm.name);
      if (value === undefined) ok = false;
      else if (hm.exact !== undefined) ok = value === hm.exact;
      else if (hm.regex !== undefined) ok = hm.regex.test(value);
    }
    if (ok) return true;
  }
  return false;
}

/** Weighted choice among the rule's backends. */
export function pickBackend(rule: CompiledRule): Target {
  const bs = rule.backends;
  if (bs.length === 1) return bs[0]!.target;
  let x = Math.random() * rule.totalWeight;
  for (let i = 0; i < bs.length; i++) {
    x -= bs[i]!.weight;
    if (x < 0) return bs[i]!.target;
  }
  return bs[bs.length - 1]!.target;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

export function retryable(ex: Exchange): boolean {
  return IDEMPOTENT.has(ex.req.method ?? '');
}
