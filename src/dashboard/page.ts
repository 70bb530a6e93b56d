// The dashboard's page shell and style: one HTML document; app/app.ts (built by tsc) draws every page with the
// libraries in assets/ (uPlot, dagre), whose URLs carry their content's hash so the browser may cache them for good.
export const page = (asset: (name: string) => string): string => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mesh dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${asset('uPlot.min.css')}">
<style>
:root { --bg:#fff; --fg:#1b1f24; --mute:#667; --line:#d8dde3; --card:#f6f8fa; --ok:#1a7f37; --bad:#cf222e; --warn:#9a6700; --acc:#0969da; }
@media (prefers-color-scheme: dark) { :root { --bg:#0d1117; --fg:#e6edf3; --mute:#8b949e; --line:#30363d; --card:#161b22; --ok:#3fb950; --bad:#f85149; --warn:#d29922; --acc:#58a6ff; } }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--fg); display:flex; min-height:100vh; }
nav { width:170px; border-right:1px solid var(--line); padding:12px; flex:none; }
nav h1 { font-size:16px; margin:0 0 12px; }
nav a { display:block; padding:6px 8px; color:var(--fg); text-decoration:none; border-radius:6px; }
nav a[aria-current=page], nav a:hover, nav a:focus { background:var(--card); outline:none; }
a:focus-visible, button:focus-visible, input:focus-visible { outline:2px solid var(--acc); }
main { flex:1; padding:16px 24px; min-width:0; }
h2 { margin:0 0 12px; font-size:18px; } h3 { font-size:15px; margin:18px 0 8px; }
table { border-collapse:collapse; width:100%; margin-bottom:12px; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
th { color:var(--mute); font-weight:600; font-size:12px; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
.bad { color:var(--bad); } .ok { color:var(--ok); } .warn { color:var(--warn); } .mute { color:var(--mute); }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px 12px; margin-bottom:12px; }
svg text { fill:var(--fg); font-size:11px; } svg text.mute { fill:var(--mute); font-size:10px; }
g.edge text { paint-order:stroke; stroke:var(--card); stroke-width:4px; stroke-linejoin:round; }
a.node { outline:none; } a.node:focus rect, a.node:hover rect { stroke:var(--acc); stroke-width:3; }
.chart .u-legend { font-size:12px; width:auto; margin:0; text-align:left; } .chart .u-legend th, .chart .u-legend td { border:0; padding:1px 4px; color:var(--fg); }
.legend span { margin-right:14px; font-size:12px; }
input, button, select { font:inherit; color:var(--fg); background:var(--bg); border:1px solid var(--line); border-radius:6px; padding:3px 8px; }
pre { font-size:12px; overflow:auto; }
#status { color:var(--mute); font-size:12px; margin-top:16px; }
</style></head>
<body><nav aria-label="pages"><h1>mesh</h1>
<a href="#/overview">Overview</a><a href="#/topology">Topology</a><a href="#/routes">Routes</a><a href="#/policy">Policy</a><a href="#/traces">Traces</a><a href="#/identity">Identity &amp; health</a>
<div id="status" role="status"></div></nav>
<main id="main" tabindex="-1"></main>
<script defer src="${asset('uPlot.iife.min.js')}"></script>
<script defer src="${asset('dagre.min.js')}"></script>
<script type="module" src="app.js"></script></body></html>`;
