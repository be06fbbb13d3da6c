/* infersight dashboard: fetches the processor's JSON and builds the page with DOM calls.
   Every value that came from telemetry goes in through textContent or an attribute set by
   setAttribute: nothing is parsed as HTML (no innerHTML anywhere in this file). Charts are SVG
   built the same way. No outside requests: this file, the CSS and /api/ are all there is. */
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "text") n.textContent = String(v);
    else if (k === "cls") n.className = v;
    else n.setAttribute(k, String(v));
  }
  for (const k of kids) if (k !== null && k !== undefined) n.append(k instanceof Node ? k : String(k));
  return n;
}

function svg(tag, attrs, ...kids) {
  const n = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "text") n.textContent = String(v);
    else n.setAttribute(k, String(v));
  }
  for (const k of kids) if (k) n.append(k);
  return n;
}

function fmt(x, digits) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (typeof x !== "number") return String(x);
  const d = digits === undefined ? 3 : digits;
  if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e6)) return x.toExponential(2);
  return String(Number(x.toFixed(d)));
}
function ms(s) { return s === null || s === undefined ? "–" : fmt(s * 1000, 1) + " ms"; }
function pct(x) { return x === null || x === undefined ? "–" : fmt(x * 100, 2) + "%"; }
function when(t) { return t ? new Date(t * 1000).toISOString().replace(".000Z", "Z") : "–"; }
function badge(status) { return el("span", { cls: "badge " + String(status || "none"), text: status || "none" }); }
function explain(text) { return el("p", { cls: "explain", text: text }); }
function section(title, ...kids) { return el("section", {}, el("h2", { text: title }), ...kids); }
function requestLink(id, label) {
  return el("a", { href: "/requests/" + encodeURIComponent(id), cls: "req", text: label || id });
}

async function api(path) {
  const r = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((body && body.error) || r.status + " " + r.statusText);
  return body;
}

const EXPLAIN = {
  health: "Health is the worst status among each version's latest findings: ok, warning (past a threshold but not yet alert-worthy, e.g. one window or few rows) or breach (what alert policies act on); none when nothing was judged for it. The row \"all\" judges every version together.",
  slo: "An SLO is a share of good calls (fast enough, or not failed) over its period. The error budget is the share of bad calls the objective allows; remaining 100% is untouched, 0% spent. A burn rate of 1 spends the budget exactly over the period; alerts fire when both a long and a short window burn faster than their factor.",
  alerts: "Open incidents: findings that breached in enough consecutive windows (persistence). Each says what moved, the likely cause class and what to check first; evidence links lead to the requests that drove it.",
  latency: "Latency percentiles per storage window, read from the merged duration sketch (exponential histogram, relative error under 0.1%) or, without one, interpolated in the explicit histogram buckets: p50 is the median call, p99 the slowest 1%.",
  burn: "Burn rate over time per SLO alert window: how fast the error budget is being spent (1 = exactly on budget).",
  slices: "Each slice (rows sharing the values of the inputs named in @monitor(slices=...)) judged on its own, against the same slice's past: a shift confined to one region or device shows here even when the model's totals stay within their thresholds. 'moved' lists the features and outputs that breached in the range.",
  heatmap: "Drift per feature (rows) and evaluation window (columns), coloured by statistic ÷ threshold: under 1 (green to yellow) is within the threshold, over 1 (orange to red) is past it; grey has no finding. The statistic is the method's distance (PSI, Wasserstein, Jensen-Shannon, chi-square...) between the window and the reference.",
  distribution: "The chosen feature's distribution in the reference (grey) and in the current range (blue), as shares of values per bin on common bins (numeric) or per category. Drift is the difference between the two shapes.",
  data_quality: "Data-quality findings: missing values (absent, null, NaN), schema violations, unseen categories and features that stopped arriving, judged per window against the reference's rates.",
  quality: "Model quality from late labels: predictions joined with the ground truth that arrived later by request ID. Coverage is labelled calls ÷ calls; metrics are computed on the labelled calls only.",
  versions: "Per-version comparison: each version's calls, errors and latency over the range, and quality on its labelled calls, side by side.",
  waterfall: "The request's kept spans on one time axis: each bar starts and ends where the span did; children are indented under their parent. Red bars ended in an error.",
  payload: "The logged payload as the SDK sent it: sampled, size-capped, and with redacted fields replaced before it left the model server.",
};

function status(text, bad) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = bad ? "bad" : "";
}

function crumbs(...parts) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren();
  for (const p of parts) nav.append(el("span", { cls: "sep", text: "/" }), p);
}

function table(headers, rows) {
  const t = el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h })))));
  const tb = el("tbody");
  for (const r of rows) tb.append(el("tr", {}, ...r.map((c) => el("td", {}, c instanceof Node ? c : fmt(c)))));
  t.append(tb);
  return t;
}

// -- charts -------------------------------------------------------------------------------

function lineChart(series, opts) {
  const W = 640, H = 200, L = 56, R = 10, T = 10, B = 28;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => v !== null);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
  if (!xs.length || !ys.length) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "axis", text: "no data in this range" }));
    return root;
  }
  const x0 = Math.min(...xs), x1 = Math.max(...xs) || x0 + 1;
  const y1 = Math.max(...ys, opts && opts.ymin !== undefined ? opts.ymin : 0) || 1;
  const sx = (x) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
  const sy = (y) => H - B - (y / y1) * (H - T - B);
  root.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axisline" }));
  for (const f of [0, 0.5, 1]) {
    root.append(svg("text", { x: L - 4, y: sy(y1 * f) + 4, "text-anchor": "end", class: "axis", text: (opts.fmt || fmt)(y1 * f) }));
  }
  root.append(svg("text", { x: L, y: H - 8, class: "axis", text: when(x0) }));
  root.append(svg("text", { x: W - R, y: H - 8, "text-anchor": "end", class: "axis", text: when(x1) }));
  if (opts && opts.hline !== undefined && opts.hline <= y1) {
    root.append(svg("line", { x1: L, x2: W - R, y1: sy(opts.hline), y2: sy(opts.hline), class: "hline" }));
  }
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => p[1] !== null).map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`);
    if (pts.length) root.append(svg("polyline", { points: pts.join(" "), class: "series s" + (i % 6) }));
  });
  const legend = el("div", { cls: "legend" }, ...series.map((s, i) => el("span", { cls: "key s" + (i % 6), text: s.name })));
  return el("div", {}, root, legend);
}

function heatColour(sev) {
  if (sev === null || sev === undefined) return "#d8d8d8";
  const t = Math.max(0, Math.min(sev / 2, 1)); // 0 .. 2x the threshold
  const hue = 120 - 120 * t; // green -> yellow (1x) -> red (2x)
  return `hsl(${hue.toFixed(0)}, 70%, ${sev > 1 ? 45 : 55}%)`;
}

function heatmap(body, onPick) {
  const cw = 22, ch = 20, L = 190, T = 8;
  const W = L + body.windows.length * cw + 10, H = T + body.features.length * ch + 6;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "heatmap", "data-features": body.features.length, "data-windows": body.windows.length });
  body.features.forEach((f, i) => {
    const label = svg("text", { x: L - 6, y: T + i * ch + 13, "text-anchor": "end", class: "flabel" });
    label.textContent = f.length > 26 ? f.slice(0, 25) + "…" : f;
    label.append(svg("title", { text: f }));
    label.addEventListener("click", () => onPick(f));
    root.append(label);
    body.windows.forEach((w, j) => {
      const c = body.cells[i][j];
      const rect = svg("rect", { x: L + j * cw, y: T + i * ch, width: cw - 2, height: ch - 2, fill: heatColour(c && c.severity), class: "cell", "data-feature": f, "data-window": w });
      const tip = c ? `${f} @ ${when(w)}: ${c.method || "statistic"} ${fmt(c.statistic)} / threshold ${fmt(c.threshold)} = ${fmt(c.severity, 2)} (${c.status})` : `${f} @ ${when(w)}: no finding`;
      rect.append(svg("title", { text: tip }));
      rect.addEventListener("click", () => onPick(f));
      root.append(rect);
    });
  });
  const caption = body.windows.length
    ? `${body.windows.length} windows of ${body.window_size} s, ${when(body.windows[0])} to ${when(body.windows[body.windows.length - 1])}; click a feature for its distribution`
    : "";
  return el("div", {}, root, el("p", { cls: "muted", text: caption }));
}

function barsChart(body) {
  const n = body.current.length, W = 640, H = 200, L = 40, B = 40, T = 10;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart dist", role: "img" });
  const all = body.current.concat(body.reference || []);
  const top = Math.max(...all, 1e-9);
  const bw = (W - L - 10) / Math.max(n, 1);
  const sy = (v) => (v / top) * (H - T - B);
  for (let i = 0; i < n; i++) {
    if (body.reference) {
      const h = sy(body.reference[i]);
      root.append(svg("rect", { x: L + i * bw, y: H - B - h, width: Math.max(bw - 1, 1), height: h, class: "ref" }));
    }
    const h = sy(body.current[i]);
    root.append(svg("rect", { x: L + i * bw + bw * 0.25, y: H - B - h, width: Math.max(bw * 0.5, 1), height: h, class: "cur" }));
  }
  if (body.kind === "numeric") {
    root.append(svg("text", { x: L, y: H - 24, class: "axis", text: fmt(body.edges[0]) }));
    root.append(svg("text", { x: W - 10, y: H - 24, "text-anchor": "end", class: "axis", text: fmt(body.edges[body.edges.length - 1]) }));
  } else {
    body.categories.forEach((c, i) => {
      const t = svg("text", { x: L + i * bw + bw / 2, y: H - 24, "text-anchor": "middle", class: "axis" });
      t.textContent = c.length > 10 ? c.slice(0, 9) + "…" : c;
      t.append(svg("title", { text: c }));
      root.append(t);
    });
  }
  root.append(svg("text", { x: 4, y: T + 10, class: "axis", text: pct(top) }));
  const legend = el("div", { cls: "legend" },
    el("span", { cls: "key ref", text: `reference (${body.reference ? body.reference_count + " values" : "none"})` }),
    el("span", { cls: "key cur", text: `current (${body.current_count} values)` }));
  return el("div", {}, root, legend);
}

// -- shared pieces ------------------------------------------------------------------------

function alertList(incidents) {
  if (!incidents.length) return el("p", { cls: "muted", text: "No open alerts." });
  const ul = el("ul", { cls: "alerts" });
  for (const a of incidents) {
    const li = el("li", { cls: "alert " + String(a.severity || "") },
      el("div", {}, badge(a.state), " ", el("strong", { text: `${a.policy}: ${a.model}${a.version ? " v" + a.version : ""}` }),
        " ", el("span", { cls: "muted", text: `since ${when(a.since)} · ${a.cause_label || a.cause_class || ""}` })));
    for (const t of a.top || []) li.append(el("div", { cls: "what", text: t.text }));
    if (a.check_first) li.append(el("div", { cls: "check" }, el("em", { text: "Check first: " }), a.check_first));
    if (a.runbook) li.append(el("div", { cls: "muted", text: "Runbook: " + a.runbook }));
    const ev = a.evidence || [];
    if (ev.length) {
      const p = el("div", { cls: "evidence" }, "Evidence: ");
      for (const e of ev) {
        p.append(requestLink(e.request_id || e.trace_id, e.request_id ? "request " + e.request_id : "trace " + e.trace_id), " ");
      }
      li.append(p);
    }
    ul.append(li);
  }
  return ul;
}

function sloTable(slos) {
  if (!slos.length) return el("p", { cls: "muted", text: "No SLO judged yet (configure slo.objectives)." });
  return table(["model", "version", "SLO", "status", "SLI", "objective", "budget left", "burn rates"],
    slos.map((s) => [s.model, s.version || "all", s.slo, badge(s.status), pct(s.sli), pct(s.objective),
      pct(s.error_budget && s.error_budget.remaining),
      Object.entries(s.burn_rates || {}).map(([k, v]) => `${k}: ${fmt(v, 2)}`).join("  ")]));
}

// -- pages --------------------------------------------------------------------------------

async function overviewPage(main) {
  crumbs();
  const body = await api("/api/dashboard/overview");
  const rows = [];
  for (const m of body.models) {
    for (const v of m.versions) {
      const br = v.breaches.map((b) => `${b.kind}: ${b.subject}`).join(", ");
      rows.push([el("a", { href: "/models/" + encodeURIComponent(m.model), text: m.model }), v.version || "all", badge(v.status), v.findings, v.warnings, br || "–"]);
    }
  }
  main.replaceChildren(
    section("Models", explain(EXPLAIN.health),
      rows.length ? table(["model", "version", "health", "findings", "warnings", "breaching"], rows) : el("p", { cls: "muted", text: "No model has sent data yet." })),
    section("Service level objectives", explain(EXPLAIN.slo), sloTable(body.slo.slos)),
    section("Open alerts", explain(EXPLAIN.alerts), alertList(body.alerts)),
  );
}

let chosenFeature = null;

async function modelPage(main, model) {
  const m = encodeURIComponent(model);
  crumbs(el("a", { href: "/models/" + m, text: model }));
  const info = await api(`/api/models/${m}`);
  const end = (info.time_range.end || Date.now() / 1000) + info.window_seconds;
  const start = Math.max(info.time_range.start || end - 3600, end - 86400);
  const range = `start=${Math.floor(start)}&end=${Math.ceil(end)}`;
  const [lat, heat, findings, slo, alerts, quality] = await Promise.all([
    api(`/api/models/${m}/latency?${range}`),
    api(`/api/models/${m}/heatmap?${range}`),
    api(`/api/models/${m}/findings?${range}`),
    api(`/api/slo?model=${m}&history=1&${range}`),
    api(`/api/alerts?model=${m}`),
    api(`/api/models/${m}/quality?${range}`).catch((e) => ({ error: e.message })),
  ]);
  const latSeries = ["p50", "p90", "p99"].map((k) => ({ name: k, points: lat.points.map((p) => [p.start, p[k]]) }));
  const burns = {};
  for (const h of slo.history || []) {
    for (const [w, v] of Object.entries(h.burn_rates || {})) {
      const key = `${h.slo} ${w}`;
      (burns[key] = burns[key] || []).push([h.at, v]);
    }
  }
  const distBox = el("div", { id: "distribution" });
  const picker = el("select", { id: "feature" });
  // internal series (__multivariate__: sampled payloads) have no distribution of their own
  const feats = info.features.map((f) => f.name).concat(info.outputs.map((o) => o.name))
    .filter((f) => !f.startsWith("__"));
  for (const f of feats) picker.append(el("option", { value: f, text: f }));
  async function pick(f) {
    chosenFeature = f; // kept across refreshes
    picker.value = f;
    distBox.replaceChildren(el("p", { cls: "muted", text: "Loading " + f + "..." }));
    try {
      const d = await api(`/api/models/${m}/distribution/${encodeURIComponent(f)}?${range}`);
      distBox.replaceChildren(el("h3", { text: f }), barsChart(d));
    } catch (e) { distBox.replaceChildren(el("p", { cls: "bad", text: e.message })); }
  }
  picker.addEventListener("change", () => pick(picker.value));
  const dq = findings.findings.filter((f) => f.kind === "data_quality" && f.status !== "ok");
  const slices = sliceRows(info.slices || [], findings.findings);
  const vf = findings.findings.filter((f) => f.kind === "version" || f.kind === "age");
  const versions = await Promise.all(info.versions.map((v) =>
    api(`/api/models/${m}/calls?${range}&version=${encodeURIComponent(v)}`).then((c) => [v, c])));
  const qv = quality.versions || {};
  main.replaceChildren(...[
    el("h1", { text: model }),
    el("p", { cls: "muted", text: `versions ${info.versions.join(", ") || "–"} · ${info.features.length} features · data ${when(info.time_range.start)} to ${when(info.time_range.end)}` }),
    section("Latency", explain(EXPLAIN.latency), lineChart(latSeries, { fmt: ms })),
    section("SLO burn rates", explain(EXPLAIN.burn), sloTable(slo.slos || []),
      Object.keys(burns).length ? lineChart(Object.entries(burns).map(([k, pts]) => ({ name: k, points: pts })), { hline: 1 }) : null),
    section("Drift heat map", explain(EXPLAIN.heatmap),
      heat.features.length ? el("div", { cls: "scroll" }, heatmap(heat, pick)) : el("p", { cls: "muted", text: "No drift findings in this range." })),
    section("Distributions", explain(EXPLAIN.distribution), el("label", {}, "Feature: ", picker), distBox),
    slices.length ? section("Slices", explain(EXPLAIN.slices),
      table(["slice", "windows judged", "drift", "data quality", "moved", "last judged"], slices)) : null,
    section("Data quality", explain(EXPLAIN.data_quality),
      dq.length ? table(["window", "version", "slice", "subject", "status", "cause", "statistic", "threshold", "evidence"],
        dq.map((f) => [when(f.window_start), f.version || "all", f.slice || "all", f.subject, badge(f.status), f.cause || "–", f.statistic, f.threshold,
          el("span", {}, ...(f.evidence || []).map((e) => requestLink(e.request_id || e.trace_id)))]))
        : el("p", { cls: "muted", text: "No data-quality problem found in this range." })),
    section("Quality from late labels", explain(EXPLAIN.quality),
      quality.error ? el("p", { cls: "muted", text: quality.error }) :
        table(["task", "calls", "labelled", "coverage", "median label delay", "metrics"], [[quality.task || "–", quality.calls, quality.labelled_calls, pct(quality.coverage),
          quality.label_delay_seconds && typeof quality.label_delay_seconds.p50 === "number" ? fmt(quality.label_delay_seconds.p50, 1) + " s" : "–",
          metrics(quality.metrics)]])),
    section("Versions", explain(EXPLAIN.versions),
      table(["version", "calls", "errors", "p50", "p99", "quality"], versions.map(([v, c]) => {
        const q = qv[v] ? metrics(qv[v].metrics) : "–";
        return [v, c.calls, c.errors, ms(c.spans.duration_seconds.quantiles && c.spans.duration_seconds.quantiles.p50),
          ms(c.spans.duration_seconds.quantiles && c.spans.duration_seconds.quantiles.p99), q || "–"];
      })),
      vf.length ? table(["window", "version", "kind", "subject", "status", "statistic", "threshold"],
        vf.map((f) => [when(f.window_start), f.version, f.kind, f.subject, badge(f.status), f.statistic, f.threshold])) : null),
    section("Alerts", explain(EXPLAIN.alerts), alertList(alerts.incidents)),
  ].filter(Boolean));
  const heatFeats = heat.features.filter((f) => feats.includes(f));
  const first = feats.includes(chosenFeature) ? chosenFeature : heatFeats.length ? heatFeats[0] : feats[0];
  if (first) await pick(first);
}

// One row per slice the model reported: how many windows were judged in the range, the worst
// drift and data-quality verdict of the newest of them, and what breached in the range.
function sliceRows(names, findings) {
  const order = { ok: 0, warning: 1, breach: 2, no_data: 3 };
  return names.map((name) => {
    const own = findings.filter((f) => f.slice === name && (f.kind === "drift" || f.kind === "data_quality"));
    const windows = [...new Set(own.map((f) => f.window_start))].sort((a, b) => a - b);
    const last = windows.length ? windows[windows.length - 1] : null;
    const worst = (kind) => {
      const now = own.filter((f) => f.kind === kind && f.window_start === last);
      if (!now.length) return badge(null);
      return badge(now.reduce((a, f) => (order[f.status] > order[a] ? f.status : a), "ok"));
    };
    const moved = [...new Set(own.filter((f) => f.status === "breach").map((f) => f.subject))];
    return [name, windows.length, worst("drift"), worst("data_quality"), moved.slice(0, 5).join(", ") || "–", last === null ? "–" : when(last)];
  });
}

function waterfall(spans) {
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const depth = (s) => { let d = 0, p = s; while (p && byId.has(p.parent_span_id) && d < 20) { p = byId.get(p.parent_span_id); d++; } return d; };
  const t0 = Math.min(...spans.map((s) => s.start_ns)), t1 = Math.max(...spans.map((s) => s.end_ns));
  const W = 760, L = 260, rowH = 22, H = spans.length * rowH + 24;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "waterfall", role: "img" });
  const sx = (t) => L + ((t - t0) / Math.max(t1 - t0, 1)) * (W - L - 70);
  const order = [...spans].sort((a, b) => a.start_ns - b.start_ns);
  order.forEach((s, i) => {
    const y = i * rowH + 4;
    const name = svg("text", { x: 4 + depth(s) * 12, y: y + 14, class: "span-name" });
    name.textContent = s.name;
    root.append(name);
    const w = Math.max(sx(s.end_ns) - sx(s.start_ns), 2);
    const bar = svg("rect", { x: sx(s.start_ns), y: y + 3, width: w, height: rowH - 8, class: s.error ? "bar error" : "bar", "data-span": s.span_id });
    bar.append(svg("title", { text: `${s.name}: ${ms((s.end_ns - s.start_ns) / 1e9)}${s.error ? " · " + (s.error_type || "error") : ""}` }));
    root.append(bar);
    root.append(svg("text", { x: sx(s.start_ns) + w + 4, y: y + 14, class: "axis", text: ms((s.end_ns - s.start_ns) / 1e9) }));
  });
  return root;
}

function metrics(m) {
  const known = Object.entries(m || {}).filter(([, v]) => v !== null && v !== undefined);
  return known.length ? known.map(([k, v]) => `${k}: ${fmt(v)}`).join("  ") : "– (no labels yet)";
}

function pre(value) { return el("pre", { cls: "json", text: JSON.stringify(value, null, 2) }); }

async function requestPage(main, id) {
  crumbs(el("span", { text: "request " + id }));
  const r = await api("/api/requests/" + encodeURIComponent(id));
  const links = el("p", {});
  for (const t of r.trace_ids) {
    links.append("trace ", el("a", { href: "/requests/" + encodeURIComponent(t), cls: "req", text: t }), " ");
    if (r.trace_links[t]) links.append(el("a", { href: r.trace_links[t], target: "_blank", rel: "noopener noreferrer", text: "open in Jaeger" }), " ");
  }
  const p = r.prediction;
  const spanRows = r.spans.map((s) => [s.name, s.span_id, s.parent_span_id || "–", ms((s.end_ns - s.start_ns) / 1e9), s.error ? badge("error") : "ok",
    Object.entries(s.attributes || {}).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join("  ")]);
  main.replaceChildren(
    el("h1", { text: "Request " + (r.request_id || id) }),
    links,
    section("Spans", explain(EXPLAIN.waterfall),
      r.spans.length ? waterfall(r.spans) : el("p", { cls: "muted", text: "No spans kept for this request (see dashboard.traces in docs/processor.md)." }),
      r.spans.length ? table(["span", "id", "parent", "duration", "status", "attributes"], spanRows) : null),
    section("Payload", explain(EXPLAIN.payload),
      p ? el("div", {}, el("p", { cls: "muted", text: `${p.model} v${p.version} at ${when(p.time)}${p.truncated ? " (truncated)" : ""}` }),
        el("h3", { text: "inputs" }), pre(p.inputs), el("h3", { text: "outputs" }), pre(p.outputs))
        : el("p", { cls: "muted", text: "No payload logged for this request (the SDK logs a sample, and every error, violation and outlier)." }),
      r.outcome && !p ? pre(r.outcome.prediction) : null),
    section("Schema violations",
      r.violations.length ? table(["feature", "rule", "count", "message"], r.violations.map((v) => [v.feature, v.rule, v.count, v.message || "–"]))
        : el("p", { cls: "muted", text: "None recorded." })),
    section("Feedback",
      r.feedback ? el("div", {}, el("p", { text: `label arrived ${when(r.feedback.time)}` + (p ? ` (${fmt(r.feedback.time - p.time, 1)} s after the prediction)` : "") }), pre(r.feedback.actual),
        Object.keys(r.feedback.attributes || {}).length ? pre(r.feedback.attributes) : null)
        : el("p", { cls: "muted", text: "No label has arrived for this request." })),
    section("Log records", r.logs.length ? table(["time", "event", "attributes"], r.logs.map((l) => [when(l.time_ns / 1e9), l.event_name, JSON.stringify(l.attributes)]))
      : el("p", { cls: "muted", text: "None kept." })),
  );
}

async function render() {
  const main = document.getElementById("main");
  const page = document.body.dataset.page;
  const path = location.pathname;
  try {
    if (page === "overview") await overviewPage(main);
    else if (page === "model") await modelPage(main, decodeURIComponent(path.slice("/models/".length)));
    else if (page === "request") await requestPage(main, decodeURIComponent(path.slice("/requests/".length)));
    status("updated " + new Date().toLocaleTimeString(), false);
  } catch (e) {
    status("could not load: " + e.message, true);
    if (main.querySelector("p.muted") && main.children.length === 1) main.replaceChildren(el("p", { cls: "bad", text: e.message }));
  }
}

const refresh = Number(document.body.dataset.refresh || "0");
render();
if (refresh > 0) setInterval(render, refresh * 1000);
