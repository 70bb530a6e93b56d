// Turns raw measurements into ratios, goal verdicts, stdout tables and the JSON record.
export const GOALS = {
  throughputVsHaproxy: 0.5, // mesh max req/s (HTTP/1.1, gRPC) and bytes/s (TCP) ≥ 0.5 × haproxy's
  cpuVsHaproxy: 1.5,        // both sidecars' CPU per request ≤ 1.5 × haproxy's two hops (issue 14)
  addedP50OverHaproxyMs: 0.5, // at the fixed rate, mesh's added p50 ≤ haproxy's + 0.5 ms
  addedP99OverHaproxyMs: 2,
  rssIdleMB: 50,            // per sidecar, before any load
  rssLoadedMB: 60,          // per sidecar, peak VmRSS during the load
  featureCost: 0.05,        // metrics, and a route in place, each cost at most 5% of the hop's throughput
};

const ok = (r) => r && !r.error && !r.skipped;
/** The baseline a path's added latency is measured against: direct for HTTP/1.1, grpc-direct for gRPC. */
const directOf = (name) => (name.startsWith('grpc-') ? 'grpc-direct' : name.startsWith('tcp-') ? null : 'direct');

export function summarize(paths) {
  const { haproxy, mesh } = paths;
  for (const [name, r] of Object.entries(paths)) {
    const d = paths[directOf(name)];
    if (ok(r) && ok(d) && r.latency && d.latency) {
      r.added = { p50: r.latency.p50 - d.latency.p50, p99: r.latency.p99 - d.latency.p99 };
    }
  }
  const rate = (r) => (r.mode === 'tcp' ? r.throughput.bytesPerSec : r.throughput.rps);
  const ratio = (a, b) => (ok(a) && ok(b) ? rate(a) / rate(b) : null);
  const cpuRatio = (a, b, key) => {
    const x = ok(a) && a[key]?.perRequest?.total;
    const y = ok(b) && b[key]?.perRequest?.total;
    return x && y ? x / y : null;
  };
  const tcpMesh = paths['tcp-mesh'];
  const tcpHap = paths['tcp-haproxy'];
  const ratios = {
    meshOverDirect: ratio(mesh, paths.direct), meshOverHaproxy: ratio(mesh, haproxy), haproxyOverDirect: ratio(haproxy, paths.direct),
    meshOverNoMetrics: ratio(mesh, paths['mesh-nometrics']), routeOverMesh: ratio(paths['mesh-route'], mesh),
    cpuAtRateMeshOverHaproxy: cpuRatio(mesh, haproxy, 'cpuAtRate'), cpuAtMaxMeshOverHaproxy: cpuRatio(mesh, haproxy, 'cpuAtMax'),
    cpuAtRateFloorOverHaproxy: cpuRatio(paths['relay-floor'], haproxy, 'cpuAtRate'), cpuAtRateMeshOverFloor: cpuRatio(mesh, paths['relay-floor'], 'cpuAtRate'),
    grpcMeshOverHaproxy: ratio(paths['grpc-mesh'], paths['grpc-haproxy']),
    grpcCpuAtRateMeshOverHaproxy: cpuRatio(paths['grpc-mesh'], paths['grpc-haproxy'], 'cpuAtRate'),
    tcpMeshOverHaproxy: ratio(tcpMesh, tcpHap),
    tcpCpuPerMBMeshOverHaproxy: ok(tcpMesh) && ok(tcpHap) ? tcpMesh.cpuAtMax.perMB.total / tcpHap.cpuAtMax.perMB.total : null,
  };
  const cost = (r) => (r === null ? null : 1 - r);
  // The memory goals are the HTTP/1.1 hop's, as issue 14 measures it; the gRPC and TCP hops' RSS is in the proxies table.
  const maxOf = (key) => (ok(mesh) ? Math.max(...mesh.proxies.map((p) => p[key] ?? 0)) : null);
  // Latencies are in tenths of a millisecond (hey): rounded to a microsecond, 2.4 − 0.9 − (1.9 − 0.9) is 0.5, not 0.5000000000000002.
  const overHap = (key) => (ok(mesh) && ok(haproxy) && mesh.added && haproxy.added ? Math.round((mesh.added[key] - haproxy.added[key]) * 1000) / 1000 : null);
  const goal = (name, value, pass, unit) => ({ name, value, unit, status: value === null ? 'SKIP' : pass(value) ? 'PASS' : 'MISS' });
  const g = GOALS;
  const goals = [
    goal(`HTTP/1.1: mesh ≥ ${g.throughputVsHaproxy}× haproxy throughput`, ratios.meshOverHaproxy, (v) => v >= g.throughputVsHaproxy, '×'),
    goal(`HTTP/1.1: sidecars' CPU/req at the fixed rate ≤ ${g.cpuVsHaproxy}× haproxy's`, ratios.cpuAtRateMeshOverHaproxy, (v) => v <= g.cpuVsHaproxy, '×'),
    goal(`HTTP/1.1: sidecars' CPU/req at max throughput ≤ ${g.cpuVsHaproxy}× haproxy's`, ratios.cpuAtMaxMeshOverHaproxy, (v) => v <= g.cpuVsHaproxy, '×'),
    goal(`HTTP/1.1: mesh +p50 ≤ haproxy's + ${g.addedP50OverHaproxyMs} ms`, overHap('p50'), (v) => v <= g.addedP50OverHaproxyMs, 'ms'),
    goal(`HTTP/1.1: mesh +p99 ≤ haproxy's + ${g.addedP99OverHaproxyMs} ms`, overHap('p99'), (v) => v <= g.addedP99OverHaproxyMs, 'ms'),
    goal(`HTTP/1.1: sidecar RSS idle ≤ ${g.rssIdleMB} MB`, maxOf('rssIdleMB'), (v) => v <= g.rssIdleMB, 'MB'),
    goal(`HTTP/1.1: sidecar RSS under load ≤ ${g.rssLoadedMB} MB (peak)`, maxOf('rssMB'), (v) => v <= g.rssLoadedMB, 'MB'),
    goal(`gRPC unary: mesh ≥ ${g.throughputVsHaproxy}× haproxy throughput`, ratios.grpcMeshOverHaproxy, (v) => v >= g.throughputVsHaproxy, '×'),
    goal(`TCP bulk: mesh ≥ ${g.throughputVsHaproxy}× haproxy bytes/s`, ratios.tcpMeshOverHaproxy, (v) => v >= g.throughputVsHaproxy, '×'),
    goal(`metrics cost ≤ ${g.featureCost * 100}% of throughput`, cost(ratios.meshOverNoMetrics), (v) => v <= g.featureCost, 'share'),
    goal(`a route costs ≤ ${g.featureCost * 100}% of throughput`, cost(ratios.routeOverMesh), (v) => v <= g.featureCost, 'share'),
  ];
  return { ratios, goals };
}

const f = (v, d = 2) => (v === null || v === undefined || Number.isNaN(v) ? '-' : v.toFixed(d));
const n0 = (v) => (v === null || v === undefined || Number.isNaN(v) ? '-' : Math.round(v).toLocaleString('en-US'));

function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('   ').trimEnd();
  console.log(line(rows[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('   '));
  for (const r of rows.slice(1)) console.log(line(r));
}

export function printReport({ config, paths, ratios, goals, loadavg }) {
  const notes = [];
  const measured = Object.entries(paths).filter(([, r]) => !r.skipped);
  for (const [name, r] of measured) if (r.error) notes.push(`${name}: failed: ${r.error.split('\n')[0]}`);
  const done = measured.filter(([, r]) => ok(r));
  const reqPaths = done.filter(([, r]) => r.mode !== 'tcp');
  const tcpPaths = done.filter(([, r]) => r.mode === 'tcp');
  console.log('');
  if (loadavg) console.log(`load average ${loadavg.before.toFixed(2)} before, ${loadavg.after.toFixed(2)} after (${loadavg.cpus} cores)`);
  if (config.runs > 1) console.log(`each figure: the median of ${config.runs} runs of the whole sequence`);
  if (reqPaths.length) {
    console.log(`HTTP/1.1: wrk -c${config.connections}, hey ${config.workers} workers; gRPC unary: h2load -c${config.grpcClients} -m${config.grpcStreams}, h2load ${config.workers} clients --rps; ${config.durationS}s each`);
    console.log(`CPU µs/req: all proxies of the path together (/proc utime+stime), at ${config.rate} req/s and at max throughput`);
    const rows = [['path', 'max req/s', 'p50 ms', 'p99 ms', '+p50 ms', '+p99 ms', `CPU µs/req @${config.rate}`, 'CPU µs/req @max']];
    for (const [name, r] of reqPaths) {
      const base = directOf(name) === name;
      rows.push([name, n0(r.throughput.rps), f(r.latency.p50), f(r.latency.p99), base ? '-' : f(r.added?.p50), base ? '-' : f(r.added?.p99),
        n0(r.cpuAtRate?.perRequest?.total), n0(r.cpuAtMax?.perRequest?.total)]);
      const t = r.throughput;
      const l = r.latency;
      if (t.non2xx || t.socketErrors || t.failed) notes.push(`${name}: load saw ${t.non2xx ?? 0} non-2xx, ${t.socketErrors ?? t.failed} errors`);
      if (l.non200 || l.achievedRps < 0.95 * config.rate) {
        notes.push(`${name}: latency run reached ${Math.round(l.achievedRps)}/${config.rate} req/s (errors, or slow responses holding workers back), ${l.non200} non-200`);
      }
    }
    table(rows);
    console.log('');
  }
  if (tcpPaths.length) {
    console.log(`bulk TCP (server → client): ${config.tcpConnections} connections, ${config.durationS}s`);
    const rows = [['path', 'MB/s', 'CPU µs/MB']];
    for (const [name, r] of tcpPaths) rows.push([name, n0(r.throughput.bytesPerSec / 1e6), f(r.cpuAtMax?.perMB?.total, 1)]);
    table(rows);
    console.log('');
  }
  const withProxies = done.filter(([, r]) => r.proxies.length);
  if (withProxies.length) {
    console.log('proxies: RSS MB idle / peak under load / 1 s after; PSS (shared pages split, the node binary\'s mostly) and private');
    console.log('(anon) MB idle and after; CPU µs per request at the fixed rate (TCP: per MB, bulk)');
    const rows = [['path', 'proxy', 'RSS idle', 'peak', 'after', 'PSS idle', 'after', 'anon idle', 'after', 'CPU µs']];
    for (const [name, r] of withProxies) {
      for (const p of r.proxies) {
        const cpu = r.mode === 'tcp' ? r.cpuAtMax?.perMB?.each?.[p.label] : r.cpuAtRate?.perRequest?.each?.[p.label];
        rows.push([name, p.label, f(p.rssIdleMB, 1), f(p.rssMB, 1), f(p.rssAfterMB, 1), f(p.pssIdleMB, 1), f(p.pssAfterMB, 1),
          f(p.anonIdleMB, 1), f(p.anonAfterMB, 1), f(cpu, 0)]);
      }
    }
    table(rows);
    console.log('');
  }
  const x = (v) => (v === null ? '-' : `${v.toFixed(2)}×`);
  console.log(`HTTP/1.1  mesh/direct ${x(ratios.meshOverDirect)}   mesh/haproxy ${x(ratios.meshOverHaproxy)}   haproxy/direct ${x(ratios.haproxyOverDirect)}`);
  console.log(`          mesh/mesh-nometrics ${x(ratios.meshOverNoMetrics)}   mesh-route/mesh ${x(ratios.routeOverMesh)}`);
  console.log(`          CPU/req mesh/haproxy ${x(ratios.cpuAtRateMeshOverHaproxy)} at the fixed rate, ${x(ratios.cpuAtMaxMeshOverHaproxy)} at max`);
  console.log(`          CPU/req at the fixed rate: relay-floor/haproxy ${x(ratios.cpuAtRateFloorOverHaproxy)} (Node's own), mesh/relay-floor ${x(ratios.cpuAtRateMeshOverFloor)} (the mesh's)`);
  console.log(`gRPC      mesh/haproxy ${x(ratios.grpcMeshOverHaproxy)}   CPU/call mesh/haproxy ${x(ratios.grpcCpuAtRateMeshOverHaproxy)}`);
  console.log(`TCP       mesh/haproxy ${x(ratios.tcpMeshOverHaproxy)} bytes/s   CPU/MB mesh/haproxy ${x(ratios.tcpCpuPerMBMeshOverHaproxy)}`);
  console.log('');
  for (const g of goals) {
    const v = g.value === null ? 'not measured' : g.unit === '×' ? `${g.value.toFixed(2)}×` : g.unit === 'share' ? `${(g.value * 100).toFixed(1)}%` : `${g.value.toFixed(2)} ${g.unit}`;
    console.log(`  ${g.status.padEnd(4)}  ${g.name.padEnd(62)} ${v}`);
  }
  if (notes.length) {
    console.log('');
    for (const n of notes) console.log(`  note: ${n}`);
  }
}
