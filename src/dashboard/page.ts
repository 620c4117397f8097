/**
 * The dashboard page: static HTML, CSS and a small script with no dependencies. Charts are plain SVG drawn by
 * the script; every value from the API is set with `textContent`, never as HTML (sessions, users and tags come
 * from clients). The script reads only the JSON admin endpoints, with the key the operator types in.
 */

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sluice dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/app.css">
<script src="/dashboard/app.js" defer></script>
</head>
<body>
<header>
  <h1>Sluice</h1>
  <form id="auth" autocomplete="off">
    <label>Key <input id="key" type="password" placeholder="admin key or team key" size="34"></label>
    <label>Range <select id="range">
      <option value="1h">last hour</option>
      <option value="24h" selected>last 24 hours</option>
      <option value="7d">last 7 days</option>
      <option value="30d">last 30 days</option>
    </select></label>
    <button type="submit">Load</button>
    <button type="button" id="forget">Forget key</button>
  </form>
  <p id="status" role="status">Enter the admin key (every team) or a team key (that team only).</p>
</header>
<main id="main" hidden>
  <section class="cards">
    <div class="card"><span>Spend</span><strong id="total-spend">–</strong></div>
    <div class="card"><span>Requests</span><strong id="total-requests">–</strong></div>
    <div class="card"><span>Cache hit rate</span><strong id="hit-rate">–</strong></div>
    <div class="card"><span>Saved</span><strong id="total-saved">–</strong></div>
    <div class="card"><span>Escalated</span><strong id="escalated">–</strong></div>
  </section>
  <section class="grid">
    <article><h2>Spend over time by team</h2><div id="chart-team" class="chart"></div><ul id="legend-team" class="legend"></ul></article>
    <article><h2>Spend over time by model</h2><div id="chart-model" class="chart"></div><ul id="legend-model" class="legend"></ul></article>
    <article><h2>Top sessions by cost</h2>
      <table id="sessions"><thead><tr><th>Session</th><th>Team</th><th>Requests</th><th>Cost</th><th>Last</th></tr></thead><tbody></tbody></table>
    </article>
    <article><h2>Cache by layer</h2>
      <table id="cache"><thead><tr><th>Layer</th><th>Hits / cached tokens</th><th>Saved</th></tr></thead><tbody></tbody></table>
    </article>
    <article><h2>Routing split</h2><div id="routing" class="bars"></div>
      <p class="note" id="routing-note"></p>
    </article>
    <article><h2>Guardrail actions</h2>
      <table id="guardrails"><thead><tr><th>Layer</th><th>Rule</th><th>Action</th><th>Requests</th><th>Matches</th></tr></thead><tbody></tbody></table>
    </article>
    <article class="wide"><h2>Budgets <a href="/admin/budgets" id="budgets-link">(JSON)</a></h2>
      <table id="budgets"><thead><tr><th>Team</th><th>Scope</th><th>Id</th><th>Window</th><th>Used</th><th>Spent</th><th>Limit</th></tr></thead><tbody></tbody></table>
    </article>
  </section>
</main>
</body>
</html>
`

export const DASHBOARD_CSS = `
:root { --bg: #f6f7f9; --fg: #1d2330; --muted: #667085; --card: #fff; --line: #e4e7ec; --accent: #2f6fed; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--fg); }
header { display: flex; flex-wrap: wrap; gap: 12px 24px; align-items: center; padding: 14px 24px; background: #111827; color: #f9fafb; }
header h1 { margin: 0; font-size: 20px; letter-spacing: .02em; }
header form { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
header input, header select, header button { font: inherit; padding: 5px 8px; border-radius: 6px; border: 1px solid #374151; }
header button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
header button#forget { background: transparent; color: #d1d5db; border-color: #4b5563; }
#status { margin: 0; color: #d1d5db; flex-basis: 100%; }
#status.error { color: #fca5a5; }
main { padding: 18px 24px 32px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; margin-bottom: 16px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; }
.card span { display: block; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card strong { font-size: 22px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 16px; }
article { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px; min-width: 0; }
article.wide { grid-column: 1 / -1; }
h2 { font-size: 15px; margin: 2px 0 10px; }
h2 a { font-size: 12px; font-weight: normal; color: var(--accent); }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 5px 6px; border-bottom: 1px solid var(--line); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 260px; }
th { color: var(--muted); font-weight: 600; font-size: 12px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.empty { color: var(--muted); font-style: italic; }
.chart svg { width: 100%; height: 190px; display: block; }
.chart .axis { fill: var(--muted); font-size: 10px; }
.legend { list-style: none; padding: 0; margin: 6px 0 0; display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.bars .bar { display: grid; grid-template-columns: 180px 1fr 60px; gap: 8px; align-items: center; margin: 4px 0; font-size: 13px; }
.bars .track { background: #eef2f7; border-radius: 4px; height: 14px; overflow: hidden; }
.bars .fill { background: var(--accent); height: 100%; }
.bars .label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.meter { background: #eef2f7; border-radius: 4px; height: 10px; width: 120px; display: inline-block; overflow: hidden; vertical-align: middle; margin-right: 6px; }
.meter b { display: block; height: 100%; background: #16a34a; }
.meter b.warn { background: #f59e0b; } .meter b.over { background: #dc2626; }
.note { color: var(--muted); margin: 8px 0 0; }
`

export const DASHBOARD_JS = `'use strict';
(function () {
  var COLORS = ['#2f6fed', '#f59e0b', '#16a34a', '#dc2626', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#ea580c', '#475569'];
  var SVG = 'http://www.w3.org/2000/svg';
  var $ = function (id) { return document.getElementById(id); };

  function usd(n) {
    if (!n) return '$0';
    if (Math.abs(n) < 0.01) return '$' + n.toFixed(6);
    return '$' + n.toFixed(2);
  }
  function pct(n) { return (n * 100).toFixed(1) + '%'; }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  function fillRows(tableId, rows, empty) {
    var body = $(tableId).querySelector('tbody');
    body.replaceChildren();
    if (!rows.length) {
      var tr = el('tr'); var td = el('td', empty, 'empty');
      td.colSpan = $(tableId).querySelectorAll('th').length; tr.appendChild(td); body.appendChild(tr);
      return;
    }
    rows.forEach(function (cells) {
      var tr = el('tr');
      cells.forEach(function (c) {
        if (c instanceof Node) { var td = el('td'); td.appendChild(c); tr.appendChild(td); }
        else tr.appendChild(el('td', c, typeof c === 'number' || /^\\$/.test(String(c)) ? 'num' : ''));
      });
      body.appendChild(tr);
    });
  }

  async function api(path) {
    var res = await fetch(path, { headers: { authorization: 'Bearer ' + sessionStorage.getItem('sluice-key') } });
    var body = await res.json().catch(function () { return {}; });
    if (!res.ok) {
      var err = new Error((body.error && body.error.message) || ('HTTP ' + res.status));
      err.status = res.status;
      throw err;
    }
    return body;
  }

  /** Stacked bars of spend per bucket, one colour per series. */
  function stackedChart(containerId, legendId, buckets, series, bucket) {
    var box = $(containerId); box.replaceChildren();
    var legend = $(legendId); legend.replaceChildren();
    var W = 640, H = 190, L = 74, B = 22, T = 8;
    var root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img' });
    var top = series.slice(0, 9);
    var rest = series.slice(9);
    if (rest.length) {
      top.push({ key: 'other', values: buckets.map(function (_, i) { return rest.reduce(function (s, r) { return s + r.values[i]; }, 0); }) });
    }
    var totals = buckets.map(function (_, i) { return top.reduce(function (s, r) { return s + r.values[i]; }, 0); });
    var max = Math.max.apply(null, totals.concat([0]));
    if (max <= 0) {
      var t = svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis' }); t.textContent = 'no spend in this range';
      root.appendChild(t); box.appendChild(root); return;
    }
    var plotW = W - L - 6, plotH = H - B - T;
    var bw = plotW / buckets.length;
    [0, 0.5, 1].forEach(function (f) {
      var y = T + plotH - f * plotH;
      root.appendChild(svg('line', { x1: L, x2: W - 6, y1: y, y2: y, stroke: '#e4e7ec' }));
      var lab = svg('text', { x: L - 4, y: y + 3, 'text-anchor': 'end', class: 'axis' }); lab.textContent = usd(max * f);
      root.appendChild(lab);
    });
    buckets.forEach(function (b, i) {
      var y = T + plotH;
      top.forEach(function (s, k) {
        var v = s.values[i]; if (!v) return;
        var h = (v / max) * plotH;
        y -= h;
        var r = svg('rect', { x: L + i * bw + bw * 0.1, y: y, width: Math.max(1, bw * 0.8), height: Math.max(0.5, h), fill: COLORS[k % COLORS.length] });
        var tip = svg('title', {}); tip.textContent = s.key + ' ' + b + ': ' + usd(v); r.appendChild(tip);
        root.appendChild(r);
      });
    });
    var step = Math.max(1, Math.ceil(buckets.length / 6));
    for (var i = 0; i < buckets.length; i += step) {
      var d = new Date(buckets[i]);
      var lab = svg('text', { x: L + i * bw + bw / 2, y: H - 6, 'text-anchor': 'middle', class: 'axis' });
      lab.textContent = bucket === 'hour' ? d.toISOString().slice(11, 16) : d.toISOString().slice(5, 10);
      root.appendChild(lab);
    }
    box.appendChild(root);
    top.forEach(function (s, k) {
      var li = el('li'); var sw = el('i'); sw.style.background = COLORS[k % COLORS.length];
      li.appendChild(sw); li.appendChild(document.createTextNode(s.key + ' ' + usd(s.total_usd !== undefined ? s.total_usd : s.values.reduce(function (a, b) { return a + b; }, 0))));
      legend.appendChild(li);
    });
  }

  function routingBars(split) {
    var box = $('routing'); box.replaceChildren();
    var total = split.reduce(function (s, r) { return s + r.requests; }, 0);
    if (!total) { box.appendChild(el('p', 'no provider calls in this range', 'note')); return; }
    split.forEach(function (r) {
      var row = el('div', null, 'bar');
      row.appendChild(el('span', r.model, 'label'));
      var track = el('span', null, 'track'); var fill = el('span', null, 'fill');
      fill.style.display = 'block'; fill.style.width = (100 * r.requests / total).toFixed(1) + '%';
      track.appendChild(fill); row.appendChild(track);
      row.appendChild(el('span', pct(r.requests / total), 'num'));
      box.appendChild(row);
    });
  }

  function meter(used) {
    var m = el('span', null, 'meter'); var b = el('b', null, used >= 1 ? 'over' : used >= 0.8 ? 'warn' : '');
    b.style.width = Math.min(100, used * 100).toFixed(1) + '%'; m.appendChild(b);
    var wrap = el('span'); wrap.appendChild(m); wrap.appendChild(document.createTextNode(pct(used)));
    return wrap;
  }

  async function load() {
    var status = $('status');
    status.className = ''; status.textContent = 'Loading…';
    var since = $('range').value;
    try {
      var who = await api('/admin/whoami');
      var results = await Promise.all([
        api('/admin/overview?since=' + encodeURIComponent(since)),
        api('/admin/guardrails?limit=500'),
        api('/admin/budgets').catch(function (e) { return { unavailable: e.message }; })
      ]);
      var o = results[0], g = results[1], budgets = results[2];
      $('main').hidden = false;
      $('total-spend').textContent = usd(o.totals.cost_usd);
      $('total-requests').textContent = String(o.totals.requests);
      $('hit-rate').textContent = pct(o.cache.hit_rate);
      $('total-saved').textContent = usd(o.totals.saved_usd);
      $('escalated').textContent = String(o.routing.escalated);
      stackedChart('chart-team', 'legend-team', o.spend.buckets, o.spend.by_team, o.bucket);
      stackedChart('chart-model', 'legend-model', o.spend.buckets, o.spend.by_model, o.bucket);
      fillRows('sessions', o.top_sessions.map(function (s) { return [s.session, s.team, s.requests, usd(s.cost_usd), s.last.slice(0, 16).replace('T', ' ')]; }), 'no sessions in this range');
      fillRows('cache', o.cache.layers.map(function (l) {
        return [l.layer, l.hits !== undefined ? l.hits + ' hits' : l.cached_tokens + ' tokens', usd(l.saved_usd)];
      }), '');
      routingBars(o.routing.split);
      $('routing-note').textContent = o.routing.escalated + ' escalated by the cascade, ' + o.routing.fell_back + ' fell back, ' + o.routing.multi_attempt + ' took more than one attempt';
      fillRows('guardrails', g.by_rule.map(function (r) { return [r.layer, r.rule, r.action, r.events, r.matches]; }), 'no guardrail actions recorded');
      if (budgets.unavailable) fillRows('budgets', [], 'budgets unavailable: ' + budgets.unavailable);
      else fillRows('budgets', budgets.data.map(function (b) {
        var used = b.limit_usd ? (b.spent_usd + b.reserved_usd) / b.limit_usd : 0;
        return [b.team, b.scope, b.id, b.window, meter(used), usd(b.spent_usd), usd(b.limit_usd) + (b.shadow ? ' (shadow)' : '')];
      }), 'no budgets configured');
      status.textContent = (who.admin ? 'Admin view: all teams' : 'Team view: ' + who.team) + ' · ' + o.since.slice(0, 16).replace('T', ' ') + ' → ' + o.until.slice(0, 16).replace('T', ' ') + ' UTC';
    } catch (err) {
      status.className = 'error';
      status.textContent = err.status === 401 ? 'That key was not accepted.' : 'Could not load: ' + err.message;
      if (err.status === 401) $('main').hidden = true;
    }
  }

  document.addEventListener('DOMContentLoaded', function () {
    $('auth').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var k = $('key').value.trim();
      if (k) sessionStorage.setItem('sluice-key', k);
      $('key').value = '';
      if (sessionStorage.getItem('sluice-key')) load();
    });
    $('range').addEventListener('change', function () { if (sessionStorage.getItem('sluice-key')) load(); });
    $('forget').addEventListener('click', function () { sessionStorage.removeItem('sluice-key'); $('main').hidden = true; $('status').textContent = 'Key forgotten.'; });
    if (sessionStorage.getItem('sluice-key')) load();
  });
})();
`
