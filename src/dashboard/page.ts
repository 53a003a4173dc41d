/**
 * The dashboard's HTML shell and styles, kept in code so a built install needs no asset copying.
 * The shell paints at once (header, navigation, a loading note); the script fills it in.
 */

export const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Meridian</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/styles.css">
<script type="module" src="/assets/app.js"></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header>
  <span class="brand">Meridian</span>
  <nav aria-label="Views">
    <a href="#/" data-nav="overview">Overview</a>
    <a href="#/clusters" data-nav="clusters">Clusters</a>
    <a href="#/services" data-nav="services">Services</a>
    <a href="#/traffic" data-nav="traffic">Gateways &amp; DNS</a>
  </nav>
  <span id="live" role="status" aria-live="polite">Connecting…</span>
</header>
<div id="banner" role="alert" hidden></div>
<main id="main" tabindex="-1"><p class="empty">Loading the clusterset…</p></main>
</body>
</html>
`;

export const STYLES_CSS = `
:root {
  --bg: #f7f8fa; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --card: #fff;
  --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --unknown: #6e7781; --accent: #0969da;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); }
a { color: var(--accent); }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 8px; top: 8px; background: var(--card); padding: 6px; z-index: 10; }
header { display: flex; gap: 24px; align-items: center; padding: 10px 20px; background: #24292f; color: #fff; }
header .brand { font-weight: 700; font-size: 16px; }
header nav { display: flex; gap: 4px; }
header nav a { color: #fff; text-decoration: none; padding: 6px 10px; border-radius: 6px; }
header nav a[aria-current="page"] { background: #57606a; }
#live { margin-left: auto; font-size: 13px; color: #d0d7de; }
#banner { padding: 10px 20px; background: #ffebe9; color: var(--bad); border-bottom: 1px solid #ff8182; }
main { padding: 16px 20px 40px; max-width: 1500px; }
main:focus { outline: none; }
h1 { font-size: 20px; margin: 4px 0 12px; }
h2 { font-size: 16px; margin: 20px 0 8px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 150px; }
.card .n { font-size: 22px; font-weight: 600; }
.card .l { color: var(--muted); }
table { border-collapse: collapse; background: var(--card); border: 1px solid var(--line); width: 100%; }
caption { text-align: left; color: var(--muted); padding: 4px 0; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f0f2f4; font-weight: 600; }
.health { display: inline-flex; align-items: center; gap: 6px; font-weight: 600; }
.health::before { content: ""; width: 10px; height: 10px; border-radius: 50%; background: currentColor; }
.healthy { color: var(--ok); } .degraded { color: var(--warn); } .unhealthy { color: var(--bad); } .unknown { color: var(--unknown); }
.muted { color: var(--muted); }
.empty { color: var(--muted); background: var(--card); border: 1px dashed var(--line); border-radius: 8px; padding: 16px; }
.message { white-space: pre-wrap; }
.toolbar { display: flex; gap: 12px; align-items: center; margin: 8px 0; flex-wrap: wrap; }
input[type="search"] { padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px; min-width: 260px; font: inherit; }
button { font: inherit; padding: 5px 10px; border: 1px solid var(--line); border-radius: 6px; background: var(--card); cursor: pointer; }
.graph { background: var(--card); border: 1px solid var(--line); border-radius: 8px; overflow: auto; max-height: 75vh; }
.graph svg { display: block; }
.graph .col-title { font-weight: 600; fill: var(--muted); }
.graph .edge { fill: none; stroke-opacity: .55; }
.graph .edge.healthy { stroke: #8cc7a0; } .graph .edge.degraded { stroke: #d4a72c; }
.graph .edge.unhealthy { stroke: #ff8182; } .graph .edge.unknown { stroke: #afb8c1; }
.graph a:focus rect, .graph a:hover rect { stroke: var(--accent); stroke-width: 3; }
.graph rect { fill: #fff; stroke: var(--line); stroke-width: 1.5; rx: 6; }
.graph rect.healthy { stroke: var(--ok); } .graph rect.degraded { stroke: var(--warn); }
.graph rect.unhealthy { stroke: var(--bad); fill: #fff5f5; } .graph rect.unknown { stroke: var(--unknown); }
.graph text { font-size: 12px; fill: var(--fg); }
.graph text.detail { fill: var(--muted); font-size: 11px; }
.bar { display: inline-block; height: 8px; background: var(--accent); border-radius: 4px; vertical-align: middle; margin-right: 6px; }
.pill { display: inline-block; padding: 0 8px; border-radius: 10px; border: 1px solid var(--line); margin: 0 4px 2px 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
`;
