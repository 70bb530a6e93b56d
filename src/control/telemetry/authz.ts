// mesh authz: a workload's inbound traffic per authorization rule (and the default), as linkerd viz authz
// shows it. Proxies count decisions per rule and client identity (rule="..."), and the responses and latency of the
// requests each rule let in (inbound_http_authz_response_*): those are the rule's success and latency, measured.
// Rows no proxy measured (proxies from before those series) are estimated: the responses and latency, counted per
// client, go to the rule that let that client in most; series without the rule label go to the rule the current
// policy lets the client in by (as a request to / would be).
import { compilePolicy } from '../../model/policy.js';
import type { MetricSource } from './source.js';
import type { AuthzResult, AuthzRow } from '../../api/telemetry.js';

export async function computeAuthz(src: MetricSource, policies: unknown, namespace: string, deployment: string, windowMs: number): Promise<AuthzResult> {
  const pods = await src.pods();
  const pod = pods.find((p) => p.namespace === namespace && p.deployment === deployment);
  if (!pod) throw Object.assign(new Error(`no deployment '${deployment}' in namespace ${namespace}`), { status: 404, hint: "'mesh stat deploy' lists them" });
  const match = { direction: 'inbound', namespace, deployment };
  const by = ['client_id'];
  const byRule = ['rule'];
  const measured = 'inbound_http_authz_response_latency_ms';
  const [allow, deny, responses, p50, p95, p99, ruleResponses, r50, r95, r99] = await Promise.all([
    src.rate('inbound_http_authz_allow_total', match, ['client_id', 'rule'], windowMs),
    src.rate('inbound_http_authz_deny_total', match, ['client_id', 'rule'], windowMs),
    src.rate('response_total', match, ['client_id', 'classification'], windowMs),
    src.quantile(0.5, 'response_latency_ms', match, by, windowMs),
    src.quantile(0.95, 'response_latency_ms', match, by, windowMs),
    src.quantile(0.99, 'response_latency_ms', match, by, windowMs),
    src.rate('inbound_http_authz_response_total', match, ['rule', 'classification'], windowMs),
    src.quantile(0.5, measured, match, byRule, windowMs),
    src.quantile(0.95, measured, match, byRule, windowMs),
    src.quantile(0.99, measured, match, byRule, windowMs),
  ]);
  let compiled;
  try {
    compiled = compilePolicy(policies ?? null);
  } catch {
    compiled = compilePolicy(null);
  }
  const ruleOf = (client: string) => {
    const d = compiled.check({ namespace, toService: pod.service, clientIdentity: client || null, path: '/' });
    const m = /^allowed by (rule \d+ of policy \S+)/.exec(d.reason);
    if (m) return m[1]!;
    if (d.reason.startsWith('allowed by default')) return 'default allow';
    if (d.reason.startsWith('denied by default')) return 'default deny';
    return d.allowed ? 'no policy' : 'denied';
  };
  const rows = new Map<string, AuthzRow & { ok: number; all: number; weight: number; q: [number, number, number] }>();
  // A client's responses and latency go to the rule the current policy lets it in by when that rule counted it
  // (a policy changed within the window leaves older rules behind), else to the rule that let it in most.
  const mainRule = new Map<string, { rule: string; rps: number }>();
  for (const s of allow) {
    const c = s.labels.client_id ?? '';
    const current = s.labels.rule === ruleOf(c) ? Infinity : s.value;
    if (s.labels.rule && current >= (mainRule.get(c)?.rps ?? -1)) mainRule.set(c, { rule: s.labels.rule, rps: current });
  }
  const row = (client: string, labelled?: string) => {
    const rule = labelled || mainRule.get(client)?.rule || ruleOf(client);
    let r = rows.get(rule);
    if (!r) rows.set(rule, (r = { rule, clients: [], allowedRps: 0, deniedRps: 0, success: null, latency_ms_p50: null, latency_ms_p95: null, latency_ms_p99: null, ok: 0, all: 0, weight: 0, q: [0, 0, 0] }));
    if (!r.clients.includes(client || '(no identity)')) r.clients.push(client || '(no identity)');
    return r;
  };
  for (const s of allow) row(s.labels.client_id ?? '', s.labels.rule).allowedRps += s.value;
  for (const s of deny) row(s.labels.client_id ?? '', s.labels.rule).deniedRps += s.value;
  for (const s of responses) {
    const r = row(s.labels.client_id ?? '');
    r.all += s.value;
    if (s.labels.classification === 'success') r.ok += s.value;
  }
  // A rule's latency: its clients' quantiles weighted by their request rates (an approximation, said in the help).
  const rate = new Map(responses.reduce((m, s) => m.set(s.labels.client_id ?? '', (m.get(s.labels.client_id ?? '') ?? 0) + s.value), new Map<string, number>()));
  [p50, p95, p99].forEach((qs, i) => {
    for (const s of qs) {
      if (!Number.isFinite(s.value)) continue;
      const r = row(s.labels.client_id ?? '');
      const w = rate.get(s.labels.client_id ?? '') ?? 0;
      r.q[i]! += s.value * w;
      if (i === 0) r.weight += w;
    }
  });
  // Measured per rule where the proxies count it.
  const per = new Map<string, { ok: number; all: number; q: (number | null)[] }>();
  const perRule = (rule: string) => per.get(rule) ?? per.set(rule, { ok: 0, all: 0, q: [null, null, null] }).get(rule)!;
  for (const s of ruleResponses) {
    const m = perRule(s.labels.rule ?? '');
    m.all += s.value;
    if (s.labels.classification === 'success') m.ok += s.value;
  }
  [r50, r95, r99].forEach((qs, i) => {
    for (const s of qs) if (Number.isFinite(s.value)) perRule(s.labels.rule ?? '').q[i] = s.value;
  });
  const out: AuthzRow[] = [];
  for (const r of rows.values()) {
    const { ok, all, weight, q, ...rest } = r;
    const m = per.get(r.rule);
    if (m && m.all > 0) {
      out.push({ ...rest, success: m.ok / m.all, latency_ms_p50: m.q[0] ?? null, latency_ms_p95: m.q[1] ?? null, latency_ms_p99: m.q[2] ?? null, latency: 'measured' });
      continue;
    }
    out.push({
      ...rest,
      success: all > 0 ? ok / all : null,
      latency_ms_p50: weight > 0 ? q[0] / weight : null,
      latency_ms_p95: weight > 0 ? q[1] / weight : null,
      latency_ms_p99: weight > 0 ? q[2] / weight : null,
      ...(weight > 0 ? { latency: 'estimated' as const } : {}),
    });
  }
  // Denials first: under default deny, the missing rule is what a broken page needs.
  out.sort((a, b) => b.deniedRps - a.deniedRps || b.allowedRps - a.allowedRps);
  return { namespace, deployment, windowMs, rows: out };
}
