// @ts-nocheck -- browser code (no DOM types in this Node project's tsconfig); tsc only copies it to dist.
// The dashboard's pages, drawn from the control plane's read-only API every few seconds. Charts are uPlot's and the
// service graph's layout dagre's (globals from assets/, loaded before this script); the graph is drawn as SVG here.
(function () {
  const REFRESH_MS = 3000;
  const KEEP = 300; // points of history per series: 15 minutes at 3 s
  const main = document.getElementById('main');
  const status = document.getElementById('status');
  const hist = new Map(); // deployment key -> [{t, rps, success, p99, p50, p95}]
  let stat = [];
  let edges = [];
  let routes = [];
  let policies = [];
  let services = [];
  let tap = null;
  let windowArg = '30s';

  const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  const pct = (v) => (v === null || v === undefined ? '-' : (v * 100).toFixed(2) + '%');
  const rpsf = (v) => (v === null || v === undefined ? '-' : v.toFixed(1) + 'rps');
  const msf = (v) => (v === null || v === undefined ? '-' : (v < 10 ? v.toFixed(1) : Math.round(v)) + 'ms');
  const key = (ns, name) => ns + '/' + name;
  async function api(path) {
    const r = await fetch('api/' + path, { headers: { accept: 'application/json' } });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || 'HTTP ' + r.status);
    return body;
  }

  async function refresh() {
    try {
      if (!hist.size) {
        // Rates over the shortest window that holds a few scrapes: a route change shows within seconds.
        const t = await api('telemetry/targets');
        windowArg = Math.max(10, Math.ceil((3 * t.intervalMs) / 1000)) + 's';
      }
      const [s, e, r, p, snap] = await Promise.all([
        api('stat?resource=deployment&all=true&window=' + windowArg),
        api('edges?resource=deployment&all=true&window=' + windowArg),
        api('config/routes'),
        api('config/policies'),
        api('snapshot'),
      ]);
      stat = s.rows;
      edges = e.edges;
      routes = (r.value && r.value.routes) || [];
      policies = (p.value && p.value.policies) || [];
      services = snap.services || [];
      const t = Date.now();
      for (const row of stat) {
        const k = key(row.namespace, row.name);
        const h = hist.get(k) || [];
        h.push({ t, rps: row.rps || 0, success: row.success, p50: row.latency_ms_p50, p95: row.latency_ms_p95, p99: row.latency_ms_p99 });
        if (h.length > KEEP) h.shift();
        hist.set(k, h);
      }
      status.textContent = 'updated ' + new Date(t).toLocaleTimeString();
      status.className = '';
    } catch (err) {
      status.textContent = 'cannot read the control plane: ' + err.message;
      status.className = 'bad';
    }
    await render();
  }

  // --- charts (uPlot, from assets/) ---
  // render() rebuilds main's HTML every refresh; a chart is a placeholder there, and mountCharts() moves the same
  // uPlot instance into it and gives it the new data (so it is not rebuilt, unless its series or the theme changed).
  const charts = new Map(); // id -> { u, sig, meta }
  let pending = [];
  const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const COLORS = ['#0969da', '#bf8700', '#cf222e', '#1a7f37', '#8250df', '#0a7b83'];

  /** A placeholder for a chart; opts(meta) builds uPlot's options when the chart is first drawn. */
  function chart(id, label, data, sig, opts, meta) {
    pending.push({ id, data, sig: sig + '|' + cssVar('--fg'), opts, meta });
    return '<div class="chart" data-chart="' + esc(id) + '" data-points="' + data[0].length + '" role="img" aria-label="' + esc(label) + '"></div>';
  }

  function mountCharts() {
    const used = new Set();
    for (const p of pending) {
      const el = main.querySelector('[data-chart="' + CSS.escape(p.id) + '"]');
      if (!el) continue;
      used.add(p.id);
      let c = charts.get(p.id);
      if (c && c.sig !== p.sig) {
        c.u.destroy();
        c = undefined;
      }
      if (c) {
        c.meta = p.meta;
        el.appendChild(c.u.root);
        c.u.setData(p.data);
      } else {
        c = { sig: p.sig, meta: p.meta };
        c.u = new uPlot(p.opts(c), p.data, el);
        charts.set(p.id, c);
      }
    }
    for (const [id, c] of charts) if (!used.has(id)) (c.u.destroy(), charts.delete(id));
    pending = [];
  }

  const axis = (values) => ({ stroke: cssVar('--mute'), grid: { stroke: cssVar('--line'), width: 1 }, ticks: { stroke: cssVar('--line'), width: 1 }, ...(values ? { values, size: 56 } : {}) });
  const times = (h) => h.map((p) => p.t / 1000);

  function sparkline(id, h) {
    return chart(id, 'rps over the last 15 minutes', [times(h), h.map((p) => p.rps)], 'spark', () => ({
      width: 120, height: 24, pxAlign: false, cursor: { show: false }, select: { show: false }, legend: { show: false },
      scales: { x: { time: false }, y: { range: (u, min, max) => [0, Math.max(max, 0.001)] } }, axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: cssVar('--acc'), width: 1.5, points: { show: false } }],
    }));
  }

  function latencyChart(id, h) {
    const names = ['p50', 'p95', 'p99'];
    return chart(id, 'latency p50, p95, p99 over time', [times(h), h.map((p) => p.p50), h.map((p) => p.p95), h.map((p) => p.p99)], 'latency', () => ({
      width: 560, height: 180, scales: { y: { range: (u, min, max) => [0, Math.max(max * 1.1, 1)] } },
      axes: [axis(), axis((u, vals) => vals.map((v) => v + 'ms'))],
      series: [{}, ...names.map((label, j) => ({ label, stroke: COLORS[j], width: 1.5, spanGaps: true, points: { show: false }, value: (u, v) => msf(v) }))],
    }));
  }

  /** Each version's share of the requests over time, stacked to 100%: series hold the running sums and uPlot's bands
   * fill between each and the one below; the legend shows each version's own share. */
  function splitChart(id, versions, stamps, rows) {
    const shares = versions.map((v) => rows.map((r) => {
      const total = versions.reduce((a, x) => a + (r[x] || 0), 0);
      return total > 0 ? (100 * (r[v] || 0)) / total : 0;
    }));
    const sums = versions.map((_, j) => rows.map((_, i) => shares.slice(0, j + 1).reduce((a, s) => a + s[i], 0)));
    const color = (j) => COLORS[j % COLORS.length];
    return chart(id, 'observed split over time', [stamps, ...sums], 'split:' + versions.join(','), (c) => ({
      width: 560, height: 140, cursor: { points: { show: false } }, scales: { y: { range: [0, 100] } },
      axes: [axis(), axis((u, vals) => vals.map((v) => v + '%'))],
      series: [{}, ...versions.map((v, j) => ({
        label: v, stroke: color(j), fill: j === 0 ? color(j) + 'cc' : undefined, width: 1, points: { show: false },
        value: (u, _v, si, i) => (i === null || i === undefined ? '-' : Math.round(c.meta[j][i]) + '%'),
      }))],
      bands: versions.slice(1).map((v, j) => ({ series: [j + 2, j + 1], fill: color(j + 1) + 'cc' })),
      legend: { markers: { fill: (u, si) => color(si - 1) } },
    }), shares);
  }

  // --- pages ---
  function overview() {
    // Failing first; the control plane (Kubernetes: mesh-control) last, marked for what it is, never unmeshed or failing.
    const rows = [...stat].sort((a, b) => !!a.control_plane - !!b.control_plane || (a.success ?? 1) - (b.success ?? 1) || a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
    const byNs = new Map();
    for (const r of rows) (byNs.get(r.namespace) || byNs.set(r.namespace, []).get(r.namespace)).push(r);
    let html = '<h2>Overview</h2>';
    if (!rows.length) html += '<p class="mute">No workloads yet.</p>';
    for (const [ns, list] of byNs) {
      html += '<h3>namespace ' + esc(ns) + '</h3><table><thead><tr><th>workload</th><th>meshed</th><th>success</th><th>rps</th><th>p50</th><th>p95</th><th>p99</th><th>tcp</th><th>rps, last 15 min</th></tr></thead><tbody>';
      for (const r of list) {
        const cls = r.control_plane ? 'mute' : r.success !== null && r.success < 0.95 ? 'bad' : r.success !== null ? 'ok' : 'mute';
        html += '<tr' + (r.control_plane ? ' class="control-plane"' : '') + '><td><a href="#/workload/' + esc(ns) + '/' + esc(r.name) + '">' + esc(r.name) + '</a></td><td>' + (r.control_plane ? '<span class="mute" title="the mesh\'s control plane: it runs no proxy of its own">control plane</span>' : esc(r.meshed)) + '</td><td class="num ' + cls + '">' + pct(r.success) + '</td><td class="num">' + rpsf(r.rps) +
          '</td><td class="num">' + msf(r.latency_ms_p50) + '</td><td class="num">' + msf(r.latency_ms_p95) + '</td><td class="num">' + msf(r.latency_ms_p99) + '</td><td class="num">' + (r.tcp_open_connections ?? '-') +
          '</td><td>' + sparkline('spark:' + key(ns, r.name), hist.get(key(ns, r.name)) || []) + '</td></tr>';
      }
      html += '</tbody></table>';
    }
    return html;
  }

  /** Edges policy allows between deployments, for namespaces under default deny (under allow, all are). */
  function allowedEdges() {
    const out = [];
    for (const p of policies) {
      if (p.spec.default !== 'deny') continue;
      const ns = p.metadata.namespace;
      for (const rule of p.spec.rules) {
        const fromSvc = String(rule.from).includes('/') ? String(rule.from).split('/').pop() : rule.from;
        for (const a of stat.filter((r) => r.namespace === ns && (fromSvc === '*' || r.name === fromSvc || r.name.startsWith(fromSvc + '-'))))
          for (const b of stat.filter((r) => r.namespace === ns && (rule.to === '*' || r.name.startsWith(rule.to + '-')))) out.push({ src: a.name, dst: b.name, ns });
      }
    }
    return out;
  }

  const NODE_W = 168, NODE_H = 42;
  const CHAR_W = 6.2; // px per character of an 11px label, to reserve room for edge labels
  /** Whether segment a→b passes through the inside of box r (Liang–Barsky clipping; touching an edge is not). */
  function cuts(a, b, r) {
    let t0 = 0, t1 = 1;
    const dx = b.x - a.x, dy = b.y - a.y;
    for (const [p, q] of [[-dx, a.x - (r.x + 1)], [dx, r.x + r.w - 1 - a.x], [-dy, a.y - (r.y + 1)], [dy, r.y + r.h - 1 - a.y]]) {
      if (p === 0) {
        if (q <= 0) return false;
      } else {
        const t = q / p;
        if (p < 0) t0 = Math.max(t0, t);
        else t1 = Math.min(t1, t);
      }
    }
    return t0 < t1;
  }
  /**
   * dagre's route for an edge as straight segments through its points (the label's among them), passing no other
   * node's box: each end on the side of its box that faces the route, and a segment that would cut a box (dagre's
   * end segments can clip a neighbour's corner) changes height in the widest box-free gap between columns instead.
   */
  function routeEdge(points, from, to, boxes) {
    const pts = points.map((p) => ({ x: p.x, y: p.y }));
    const onSide = (b, toward) => {
      const y = Math.min(Math.max(toward.y, b.y + 8), b.y + b.h - 8);
      return toward.x >= b.x + b.w ? { x: b.x + b.w, y } : toward.x <= b.x ? { x: b.x, y } : null;
    };
    const n = pts.length;
    if (n >= 2) {
      pts[0] = onSide(boxes.get(from), pts[1]) || pts[0];
      pts[n - 1] = onSide(boxes.get(to), pts[n - 2]) || pts[n - 1];
    }
    const others = [...boxes].filter(([id]) => id !== from && id !== to).map(([, b]) => b);
    const out = [pts[0]];
    for (let i = 1; i < n; i++) {
      const p = out[out.length - 1], q = pts[i];
      if (others.some((b) => cuts(p, q, b))) {
        const lo = Math.min(p.x, q.x), hi = Math.max(p.x, q.x);
        let best = null, at = lo;
        for (const b of [...boxes.values()].sort((u, v) => u.x - v.x)) {
          if (b.x > at && (!best || Math.min(b.x, hi) - at > best[1] - best[0])) best = [at, Math.min(b.x, hi)];
          at = Math.max(at, b.x + b.w);
          if (at >= hi) break;
        }
        if (at < hi && (!best || hi - at > best[1] - best[0])) best = [at, hi];
        if (best) {
          const [g0, g1] = p.x <= q.x ? best : [best[1], best[0]];
          out.push({ x: g0, y: p.y }, { x: g1, y: q.y });
        }
      }
      out.push(q);
    }
    return 'M' + out.map((p) => p.x.toFixed(1) + ',' + p.y.toFixed(1)).join('L');
  }

  function topology() {
    // Nodes are the ends of edges observed or allowed: a workload nobody calls and that calls nobody (the control plane
    // on Kubernetes, a job that has not run) would stand alone; the overview lists it.
    const nodes = new Map();
    const denyNs = new Set(policies.filter((p) => p.spec.default === 'deny').map((p) => p.metadata.namespace));
    const allowed = allowedEdges();
    const isAllowed = (e) => !denyNs.has(e.dst_namespace) || allowed.some((a) => a.src === e.src && a.dst === e.dst && a.ns === e.dst_namespace);
    const links = edges.map((e) => ({ from: key(e.src_namespace, e.src), to: key(e.dst_namespace, e.dst), rps: e.rps, secured: e.secured, ok: isAllowed(e), seen: true }));
    for (const a of allowed) if (!links.some((l) => l.from === key(a.ns, a.src) && l.to === key(a.ns, a.dst))) links.push({ from: key(a.ns, a.src), to: key(a.ns, a.dst), rps: 0, secured: false, ok: true, seen: false });
    const rowOf = new Map(stat.map((r) => [key(r.namespace, r.name), r]));
    for (const l of links) for (const id of [l.from, l.to]) if (!nodes.has(id)) nodes.set(id, { id, ns: id.split('/')[0], name: id.split('/')[1], row: rowOf.get(id) || null });
    if (!nodes.size) return '<h2>Topology</h2><p class="mute">No traffic between workloads yet, and no policy that allows any.</p>';
    // dagre lays the graph out left to right in layers (callers before callees), with room for each edge's label;
    // sorted input keeps the layout still between refreshes.
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: 'LR', nodesep: 18, ranksep: 36, edgesep: 14, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const id of [...nodes.keys()].sort()) g.setNode(id, { width: NODE_W, height: NODE_H });
    links.sort((a, b) => (a.from + ' ' + a.to).localeCompare(b.from + ' ' + b.to));
    for (const l of links) {
      l.failing = l.seen && (nodes.get(l.to).row?.success ?? 1) < 0.95;
      l.label = (l.seen ? l.rps.toFixed(1) + 'rps' : 'never seen') + (l.failing ? ' failing' : '');
      l.width = (l.secured ? 14 : 0) + l.label.length * CHAR_W + 6;
      g.setEdge(l.from, l.to, { width: l.width, height: 16, labelpos: 'c' });
    }
    dagre.layout(g);
    const { width, height } = g.graph();
    const boxes = new Map([...nodes.keys()].map((id) => {
      const p = g.node(id);
      return [id, { x: p.x - NODE_W / 2, y: p.y - NODE_H / 2, w: NODE_W, h: NODE_H }];
    }));
    let svg = '<svg class="graph" width="' + Math.ceil(width) + '" height="' + Math.ceil(height) + '" role="img" aria-label="service graph"><defs>' +
      ['ok', 'bad', 'mute'].map((c) => '<marker id="arr-' + c + '" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="var(--' + c + ')"/></marker>').join('') +
      '<symbol id="lock" viewBox="0 0 12 14"><path d="M3 6V4a3 3 0 0 1 6 0v2" fill="none" stroke="currentColor" stroke-width="1.6"/><rect x="1" y="6" width="10" height="8" rx="1.5" fill="currentColor"/></symbol></defs>';
    for (const l of links) {
      const e = g.edge(l.from, l.to);
      const state = !l.ok ? 'not-allowed' : l.seen ? 'observed' : 'allowed-unseen';
      const kind = !l.ok || l.failing ? 'bad' : l.seen ? 'ok' : 'mute';
      const left = e.x - l.width / 2;
      svg += '<g class="edge" data-from="' + esc(l.from) + '" data-to="' + esc(l.to) + '" data-state="' + state + '"' + (l.failing ? ' data-failing="true"' : '') + ' style="color:var(--' + kind + ')">' +
        '<path d="' + routeEdge(e.points, l.from, l.to, boxes) + '" fill="none" stroke="currentColor" stroke-linejoin="round" marker-end="url(#arr-' + kind + ')" stroke-width="' + (l.seen ? 2 : 1.5) + '"' +
        (l.seen ? ' stroke-dasharray="6 4"><animate attributeName="stroke-dashoffset" from="20" to="0" dur="1s" repeatCount="indefinite"/></path>' : ' stroke-dasharray="3 5"></path>') +
        (l.secured ? '<use href="#lock" class="lock" x="' + (left + 2) + '" y="' + (e.y - 7) + '" width="10" height="12"><title>mTLS: both identities proved</title></use>' : '') +
        '<text x="' + (left + (l.secured ? 15 : 3)) + '" y="' + (e.y + 4) + '">' + l.label + '</text></g>';
    }
    for (const n of nodes.values()) {
      const p = g.node(n.id);
      const x = p.x - NODE_W / 2, y = p.y - NODE_H / 2;
      const bad = n.row && n.row.success !== null && n.row.success < 0.95;
      svg += '<a href="#/workload/' + esc(n.id) + '" class="node" data-id="' + esc(n.id) + '" aria-label="' + esc(n.name + ' (' + n.ns + ')') + '"><rect x="' + x + '" y="' + y + '" width="' + NODE_W + '" height="' + NODE_H + '" rx="8" fill="var(--card)" stroke="' + (bad ? 'var(--bad)' : 'var(--line)') + '" stroke-width="1.5"/>' +
        '<text x="' + (x + 8) + '" y="' + (y + 17) + '">' + esc(n.name) + '</text><text x="' + (x + 8) + '" y="' + (y + 33) + '" class="mute">' + (n.row ? pct(n.row.success) + ' · ' + rpsf(n.row.rps) + ' · p99 ' + msf(n.row.latency_ms_p99) : esc(n.ns)) + '</text></a>';
    }
    svg += '</svg>';
    return '<h2>Topology</h2><div class="legend"><span class="ok">— observed</span><span class="bad">— observed, not allowed by policy, or failing</span><span class="mute">- - allowed, never seen</span><span><svg width="10" height="12" aria-hidden="true"><use href="#lock" width="10" height="12"/></svg> mTLS: both identities proved</span></div><div class="card" style="overflow:auto">' + svg + '</div>';
  }

  async function workload(ns, name) {
    const h = hist.get(key(ns, name)) || [];
    const row = stat.find((r) => r.namespace === ns && r.name === name);
    const edgeRows = (list, side) => list.map((e) => '<tr><td>' + esc(side === 'in' ? e.src : e.dst) + '</td><td class="num">' + rpsf(e.rps) + '</td><td>' + (e.secured ? 'mTLS ' + esc(side === 'in' ? e.client_id : e.server_id) : 'no') + '</td></tr>').join('');
    const ins = edges.filter((e) => e.dst === name && e.dst_namespace === ns), outs = edges.filter((e) => e.src === name && e.src_namespace === ns);
    let html = '<h2>' + esc(name) + ' <span class="mute">(' + esc(ns) + ')</span></h2>';
    html += row ? '<div class="card">success ' + pct(row.success) + ' · ' + rpsf(row.rps) + ' · p50 ' + msf(row.latency_ms_p50) + ' · p95 ' + msf(row.latency_ms_p95) + ' · p99 ' + msf(row.latency_ms_p99) + ' · ' + (row.control_plane ? 'the mesh\'s control plane' : 'meshed ' + esc(row.meshed)) + '</div>' : '';
    html += '<h3>Latency</h3>' + latencyChart('latency:' + key(ns, name), h);
    html += '<h3>Inbound</h3><table><thead><tr><th>from</th><th>rps</th><th>secured</th></tr></thead><tbody>' + edgeRows(ins, 'in') + '</tbody></table>';
    html += '<h3>Outbound</h3><table><thead><tr><th>to</th><th>rps</th><th>secured</th></tr></thead><tbody>' + edgeRows(outs, 'out') + '</tbody></table>';
    const target = 'deploy/' + name;
    if (!tap || tap.target !== target || tap.ns !== ns) startTap(ns, target);
    html += '<h3>Busiest paths (top)</h3>' + topTable();
    html += '<h3>Live calls (tap)</h3><form id="tapf"><label>path prefix <input name="path" value="' + esc(tap.path) + '"></label> <label>method <input name="method" size="6" value="' + esc(tap.method) + '"></label> <button>apply</button></form>';
    html += '<table id="tap"><thead><tr><th>dir</th><th>method</th><th>authority</th><th>path</th><th>status</th><th>latency</th><th>src</th><th>dst</th><th>tls</th><th>error</th></tr></thead><tbody>' +
      tap.events.slice(-30).reverse().map((e) => '<tr><td>' + e.direction + '</td><td>' + esc(e.method) + '</td><td>' + esc(e.authority) + '</td><td>' + esc(e.path) + '</td><td class="' + (e.status >= 500 || e.error ? 'bad' : '') + '">' + e.status + '</td><td class="num">' + (e.latencyUs / 1000).toFixed(1) + 'ms</td><td>' + esc(short(e.src)) + '</td><td>' + esc(short(e.dst)) + '</td><td>' + e.tls + '</td><td class="' + (e.error ? 'bad' : '') + '">' + esc(e.error ? e.error + (e.reason ? ': ' + e.reason : '') : '') + '</td></tr>').join('') + '</tbody></table>';
    return html;
  }
  const short = (id) => String(id || '-').replace(/^spiffe:\/\/[^/]+\//, '');

  function topTable() {
    const rows = new Map();
    for (const e of tap.events) {
      const k = e.direction + ' ' + e.method + ' ' + e.path.split('?')[0];
      const r = rows.get(k) || { k, n: 0, ok: 0, worst: 0 };
      r.n++;
      if (e.status < 500) r.ok++;
      r.worst = Math.max(r.worst, e.latencyUs);
      rows.set(k, r);
    }
    return '<table><thead><tr><th>request</th><th>count</th><th>success</th><th>worst</th></tr></thead><tbody>' + [...rows.values()].sort((a, b) => b.n - a.n).slice(0, 10).map((r) => '<tr><td>' + esc(r.k) + '</td><td class="num">' + r.n + '</td><td class="num">' + pct(r.ok / r.n) + '</td><td class="num">' + (r.worst / 1000).toFixed(1) + 'ms</td></tr>').join('') + '</tbody></table>';
  }

  async function startTap(ns, target, path = '', method = '') {
    const mine = { ns, target, path, method, events: [], id: null };
    tap = mine;
    const q = new URLSearchParams({ target, namespace: ns, maxRps: '20' });
    if (path) q.set('path', path);
    if (method) q.set('method', method);
    try {
      mine.id = (await api('tap?' + q)).id;
      let after = 0;
      while (tap === mine) {
        const r = await api('tap?id=' + mine.id + '&after=' + after + '&waitMs=2000');
        after = r.next;
        mine.events.push(...r.events);
        if (mine.events.length > 500) mine.events.splice(0, mine.events.length - 500);
      }
    } catch (err) {
      if (tap === mine) mine.error = err.message;
    }
  }

  function routesPage() {
    const names = new Set(routes.map((r) => r.metadata.namespace + '/' + r.metadata.name));
    for (const s of services) if (new Set(s.endpoints.map((e) => e.version)).size > 1) names.add(s.namespace + '/' + s.name);
    let html = '<h2>Routes</h2>';
    if (!names.size) html += '<p class="mute">No routes and no service with more than one version.</p>';
    for (const id of [...names].sort()) {
      const [ns, svc] = id.split('/');
      const route = routes.find((r) => r.metadata.namespace === ns && r.metadata.name === svc);
      const versions = [...new Set([...stat.filter((r) => r.namespace === ns && r.name.startsWith(svc + '-')).map((r) => r.name.slice(svc.length + 1))])].sort();
      html += '<section class="card route" data-service="' + esc(id) + '"><h3>' + esc(id) + '</h3>';
      if (route) {
        html += '<table><thead><tr><th>rule</th><th>matches</th><th>configured weights</th><th>timeout / retries / fault</th></tr></thead><tbody>';
        route.spec.rules.forEach((rule, i) => {
          const total = rule.backends.reduce((a, b) => a + b.weight, 0) || 1;
          html += '<tr><td>' + (i + 1) + '</td><td>' + esc(rule.matches ? JSON.stringify(rule.matches) : 'default') + '</td><td class="configured">' + rule.backends.map((b) => esc(b.version) + '=' + Math.round((100 * b.weight) / total) + '%').join(' ') + '</td><td>' + esc([rule.timeout, rule.retries && JSON.stringify(rule.retries), rule.fault && JSON.stringify(rule.fault)].filter(Boolean).join(' ') || '-') + '</td></tr>';
        });
        html += '</tbody></table>';
      } else html += '<p class="mute">no route: an even spread over every live endpoint</p>';
      const series = [];
      const hs = versions.map((v) => hist.get(key(ns, svc + '-' + v)) || []);
      const longest = hs.reduce((a, x) => (x.length > a.length ? x : a), []);
      const n = longest.length;
      for (let i = 0; i < n; i++) {
        const row = {};
        versions.forEach((v, j) => {
          const h = hs[j];
          const p = h[h.length - n + i];
          row[v] = p ? p.rps : 0;
        });
        series.push(row);
      }
      const last = series[series.length - 1] || {};
      const total = versions.reduce((a, v) => a + (last[v] || 0), 0);
      html += '<p>observed now: <span class="observed">' + (total > 0 ? versions.map((v) => esc(v) + '=' + Math.round((100 * (last[v] || 0)) / total) + '%').join(' ') : 'no traffic') + '</span></p>' + splitChart('split:' + id, versions, times(longest), series) + '</section>';
    }
    return html;
  }

  /** Figures estimated from a rule's clients (sidecars that do not measure per rule) are marked ~. */
  const est = (r, v) => (r.latency === 'estimated' && v !== '-' ? '~' + v : v);

  async function policyPage() {
    let html = '<h2>Policy</h2>';
    const nss = [...new Set(stat.map((r) => r.namespace).concat(policies.map((p) => p.metadata.namespace)))].sort();
    for (const ns of nss) {
      const ps = policies.filter((p) => p.metadata.namespace === ns);
      const def = ps.some((p) => p.spec.default === 'deny') ? 'deny' : ps.length ? 'allow' : 'allow (no policy)';
      html += '<h3>namespace ' + esc(ns) + ' — default ' + esc(def) + '</h3><table><thead><tr><th>policy</th><th>rule</th><th>from</th><th>to</th><th>port</th><th>path prefix</th></tr></thead><tbody>';
      for (const p of ps) p.spec.rules.forEach((r, i) => (html += '<tr><td>' + esc(p.metadata.name) + '</td><td>' + (i + 1) + '</td><td>' + esc(r.from) + '</td><td>' + esc(r.to) + '</td><td>' + (r.port ?? '*') + '</td><td>' + esc(r.pathPrefix ?? '/') + '</td></tr>'));
      html += '</tbody></table><table><thead><tr><th>workload</th><th>rule</th><th>clients</th><th>allowed</th><th>denied</th><th>success</th><th>p50</th><th>p99</th></tr></thead><tbody>';
      for (const w of stat.filter((r) => r.namespace === ns)) {
        const a = await api('authz?namespace=' + encodeURIComponent(ns) + '&deployment=' + encodeURIComponent(w.name) + '&window=1m').catch(() => ({ rows: [] }));
        for (const r of a.rows) html += '<tr><td>' + esc(w.name) + '</td><td>' + esc(r.rule) + '</td><td>' + esc(r.clients.map(short).join(', ')) + '</td><td class="num">' + rpsf(r.allowedRps) + '</td><td class="num ' + (r.deniedRps > 0 ? 'bad' : '') + '">' + rpsf(r.deniedRps) + '</td><td class="num">' + est(r, pct(r.success)) + '</td><td class="num">' + est(r, msf(r.latency_ms_p50)) + '</td><td class="num">' + est(r, msf(r.latency_ms_p99)) + '</td></tr>';
      }
      html += '</tbody></table>';
    }
    return html;
  }

  async function identityPage() {
    const [id, eps] = await Promise.all([api('identity-summary'), api('endpoints')]);
    // Workload certificates live 24 h: their time left reads in hours ('1 days' said nothing).
    const left = (ms) => {
      const s = (ms - Date.now()) / 1000;
      return s <= 0 ? 'expired' : s < 3600 ? 'in ' + Math.ceil(s / 60) + ' min' : s < 172800 ? 'in ' + Math.round(s / 3600) + ' h' : 'in ' + Math.round(s / 86400) + ' days';
    };
    const when = (ms) => new Date(ms).toISOString().replace('T', ' ').slice(0, 16) + ' UTC (' + left(ms) + ')';
    let html = '<h2>Identity &amp; health</h2><table><thead><tr><th>certificate</th><th>subject</th><th>expires</th></tr></thead><tbody>';
    for (const c of id.certificates) html += '<tr><td>' + esc(c.role) + '</td><td>' + esc(c.subject) + '</td><td class="' + (c.notAfter - Date.now() < 60 * 86400000 ? 'warn' : 'ok') + '">' + when(c.notAfter) + '</td></tr>';
    html += '</tbody></table><h3>Proxies</h3><table><thead><tr><th>proxy</th><th>identity</th><th>config</th><th>last seen</th><th>certificate expires</th></tr></thead><tbody>';
    for (const e of eps) html += '<tr><td>' + esc(e.instance) + '</td><td>' + esc(short(e.identity)) + '</td><td>' + esc(e.configVersion ?? '-') + '</td><td>' + esc(e.lastSeen ?? '-') + '</td><td>' + (id.proxyExpiry[e.instance] ? when(id.proxyExpiry[e.instance]) : '-') + '</td></tr>';
    html += '</tbody></table><h3>mesh check</h3><table><tbody>' + id.checks.map((c) => '<tr><td class="' + (c.result === 'success' ? 'ok' : c.result === 'warning' ? 'warn' : 'bad') + '">' + (c.result === 'success' ? '√' : c.result === 'warning' ? '‼' : '×') + '</td><td>' + esc(c.description) + '</td><td class="mute">' + esc(c.error ?? '') + '</td></tr>').join('') + '</tbody></table>';
    return html;
  }

  async function tracesPage(id) {
    const list = (await api('traces')).traces;
    let html = '<h2>Traces</h2>';
    if (!list.length) return html + '<p class="mute">No spans yet: sidecars export them to the control plane by default (a few new traces a second each; all of them with --trace-collector set to the otlp URL in control.json), or to the collector --trace-collector names.</p>';
    if (id) {
      const spans = (await api('traces/' + id)).spans;
      const t0 = Math.min(...spans.map((x) => x.startMs)), t1 = Math.max(...spans.map((x) => x.endMs)), span = Math.max(t1 - t0, 0.001);
      html += '<h3>trace ' + esc(id) + ' · ' + (t1 - t0).toFixed(1) + 'ms</h3><div class="card waterfall">';
      for (const x of spans) {
        const left = ((x.startMs - t0) / span) * 100, width = Math.max(0.5, ((x.endMs - x.startMs) / span) * 100);
        html += '<div class="span" data-service="' + esc(x.service) + '" style="display:flex;align-items:center;gap:8px;margin:2px 0"><span style="width:260px;flex:none;overflow:hidden;text-overflow:ellipsis">' + esc(x.service) + ' · ' + esc(x.name) + '</span><span style="flex:1;position:relative;height:14px"><span style="position:absolute;left:' + left.toFixed(2) + '%;width:' + width.toFixed(2) + '%;height:14px;border-radius:3px;background:' + (x.status === 2 ? 'var(--bad)' : 'var(--acc)') + '"></span></span><span class="num" style="width:70px;text-align:right">' + (x.endMs - x.startMs).toFixed(1) + 'ms</span></div>';
      }
      html += '</div>';
    }
    html += '<table><thead><tr><th>trace</th><th>root</th><th>services</th><th>spans</th><th>duration</th></tr></thead><tbody>';
    for (const t of list.slice(0, 50)) html += '<tr><td><a href="#/traces/' + esc(t.traceId) + '">' + esc(t.traceId.slice(0, 12)) + '</a></td><td class="' + (t.failed ? 'bad' : '') + '">' + esc(t.root) + '</td><td>' + esc(t.services.join(' → ')) + '</td><td class="num">' + t.spans + '</td><td class="num">' + t.durationMs.toFixed(1) + 'ms</td></tr>';
    return html + '</tbody></table>';
  }

  async function render() {
    const path = (location.hash || '#/overview').slice(2).split('/');
    for (const a of document.querySelectorAll('nav a')) a.toggleAttribute('aria-current', a.getAttribute('href') === '#/' + path[0]);
    if (path[0] !== 'workload') tap = null;
    let html;
    try {
      if (path[0] === 'topology') html = topology();
      else if (path[0] === 'workload') html = await workload(decodeURIComponent(path[1]), decodeURIComponent(path[2]));
      else if (path[0] === 'routes') html = routesPage();
      else if (path[0] === 'policy') html = await policyPage();
      else if (path[0] === 'traces') html = await tracesPage(path[1]);
      else if (path[0] === 'identity') html = await identityPage();
      else html = overview();
    } catch (err) {
      html = '<p class="bad">' + esc(err.message) + '</p>';
    }
    // The refresh rebuilds main: keep the keyboard's place (a form field by name, a link by its target).
    const a = main.contains(document.activeElement) ? document.activeElement : null;
    const focused = a && (a.getAttribute('name') ? '[name="' + CSS.escape(a.getAttribute('name')) + '"]' : a.getAttribute('href') ? '[href="' + CSS.escape(a.getAttribute('href')) + '"]' : null);
    main.innerHTML = html;
    main.dataset.page = path[0] || 'overview';
    mountCharts();
    if (focused) main.querySelector(focused)?.focus();
    const f = document.getElementById('tapf');
    if (f) f.onsubmit = (ev) => {
      ev.preventDefault();
      startTap(tap.ns, tap.target, f.path.value, f.method.value);
    };
  }

  window.addEventListener('hashchange', () => void render());
  // Charts draw on canvas with the theme's colours read at creation: a theme change redraws them.
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => void render());
  void refresh();
  setInterval(() => void refresh(), REFRESH_MS);
})();
