// Turns raw measurements into ratios, goal verdicts, a stdout table and the JSON record.
export const GOALS = {
  throughputVsHaproxy: 0.5, // mesh max req/s ≥ 0.5 × haproxy
  addedP50Ms: 2,            // at the fixed rate, over direct
  addedP99Ms: 5,
  rssMB: 80,                // per proxy process, peak VmRSS during load
  featureCost: 0.05,        // metrics, and a route in place, each cost at most 5% of the hop's throughput
};

const ok = (r) => r && !r.error && !r.skipped;

export function summarize(paths) {
  const { direct, haproxy, mesh } = paths;
  const noMetrics = paths['mesh-nometrics'];
  const withRoute = paths['mesh-route'];
  for (const r of Object.values(paths)) {
    if (ok(r) && ok(direct)) {
      r.added = { p50: r.latency.p50 - direct.latency.p50, p99: r.latency.p99 - direct.latency.p99 };
    }
  }
  const ratio = (a, b) => (ok(a) && ok(b) ? a.throughput.rps / b.throughput.rps : null);
  const ratios = {
    meshOverDirect: ratio(mesh, direct), meshOverHaproxy: ratio(mesh, haproxy), haproxyOverDirect: ratio(haproxy, direct),
    meshOverNoMetrics: ratio(mesh, noMetrics), routeOverMesh: ratio(withRoute, mesh),
  };
  const cost = (r) => (r === null ? null : 1 - r);
  const meshRss = ok(mesh) ? Math.max(...mesh.proxies.map((p) => p.rssMB)) : null;
  const goal = (name, value, pass, unit) => ({ name, value, unit, status: value === null ? 'SKIP' : pass(value) ? 'PASS' : 'MISS' });
  const goals = [
    goal(`mesh ≥ ${GOALS.throughputVsHaproxy}× haproxy throughput`, ratios.meshOverHaproxy, (v) => v >= GOALS.throughputVsHaproxy, '×'),
    goal(`mesh added p50 ≤ ${GOALS.addedP50Ms} ms over direct`, mesh?.added?.p50 ?? null, (v) => v <= GOALS.addedP50Ms, 'ms'),
    goal(`mesh added p99 ≤ ${GOALS.addedP99Ms} ms over direct`, mesh?.added?.p99 ?? null, (v) => v <= GOALS.addedP99Ms, 'ms'),
    goal(`mesh RSS < ${GOALS.rssMB} MB per proxy`, meshRss, (v) => v < GOALS.rssMB, 'MB'),
    goal(`metrics cost ≤ ${GOALS.featureCost * 100}% of throughput`, cost(ratios.meshOverNoMetrics), (v) => v <= GOALS.featureCost, 'share'),
    goal(`a route costs ≤ ${GOALS.featureCost * 100}% of throughput`, cost(ratios.routeOverMesh), (v) => v <= GOALS.featureCost, 'share'),
  ];
  return { ratios, goals };
}

export function printReport({ config, paths, ratios, goals }) {
  const f = (v, d = 2) => (v === null || v === undefined || Number.isNaN(v) ? '-' : v.toFixed(d));
  const rows = [['path', 'max req/s', 'p50 ms', 'p99 ms', '+p50 ms', '+p99 ms', 'proxy RSS MB (peak)']];
  const notes = [];
  for (const [name, r] of Object.entries(paths)) {
    if (r.skipped) continue;
    if (r.error) {
      rows.push([name, 'failed', '', '', '', '', '']);
      notes.push(`${name}: ${r.error.split('\n')[0]}`);
      continue;
    }
    const rss = r.proxies.length ? r.proxies.map((p) => `${p.label} ${f(p.rssMB, 1)}`).join(', ') : '-';
    rows.push([name, Math.round(r.throughput.rps).toLocaleString('en-US'), f(r.latency.p50), f(r.latency.p99),
      name === 'direct' ? '-' : f(r.added?.p50), name === 'direct' ? '-' : f(r.added?.p99), rss]);
    const t = r.throughput;
    const l = r.latency;
    if (t.non2xx || t.socketErrors) notes.push(`${name}: wrk saw ${t.non2xx} non-2xx and ${t.socketErrors} socket errors`);
    if (l.non200 || l.achievedRps < 0.95 * config.rate) {
      notes.push(`${name}: latency run reached ${Math.round(l.achievedRps)}/${config.rate} req/s (errors, or slow responses holding workers back), ${l.non200} non-200`);
    }
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => (i === 0 || i === r.length - 1 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('   ').trimEnd();
  console.log('');
  console.log(`max req/s: wrk, ${config.connections} connections, ${config.durationS}s; latency: hey at ${config.rate} req/s (${config.workers} keep-alive workers), ${config.durationS}s`);
  console.log(line(rows[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('   '));
  for (const r of rows.slice(1)) console.log(line(r));
  console.log('');
  const x = (v) => (v === null ? '-' : `${v.toFixed(2)}×`);
  console.log(`throughput  mesh/direct ${x(ratios.meshOverDirect)}   mesh/haproxy ${x(ratios.meshOverHaproxy)}   haproxy/direct ${x(ratios.haproxyOverDirect)}`);
  console.log(`            mesh/mesh-nometrics ${x(ratios.meshOverNoMetrics)}   mesh-route/mesh ${x(ratios.routeOverMesh)}`);
  console.log('');
  for (const g of goals) {
    const v = g.value === null ? 'not measured' : g.unit === '×' ? `${g.value.toFixed(2)}×` : g.unit === 'share' ? `${(g.value * 100).toFixed(1)}%` : `${g.value.toFixed(2)} ${g.unit}`;
    console.log(`  ${g.status.padEnd(4)}  ${g.name.padEnd(40)} ${v}`);
  }
  if (notes.length) {
    console.log('');
    for (const n of notes) console.log(`  note: ${n}`);
  }
}
