"""One self-contained HTML page from a :class:`~infersight.report.model.ReportInput`: inline
CSS, inline SVG, no script and nothing fetched, so it opens anywhere, offline, and can be
mailed or archived with a CI run.

Top to bottom: the summary (how many features drifted, since when over a range), the drift
table of the latest window (earlier windows folded below it, and a features × windows grid
when there are several), a reference-versus-current plot per feature, data quality (missing
values by kind, schema violations, features the data lacks), and what each method and
number means. Everything that came from the data (feature names, category values, reasons)
is escaped. The drift JSON the table was drawn from is embedded as a non-executed
``application/json`` block (``id="infersight-drift"``) for tools that want the numbers.

Example:
    >>> from infersight.report.model import FeatureView, ReportInput
    >>> drift = {"windows": [{"start": 0, "end": 3, "rows": 3, "multivariate": {}, "features": {
    ...     "<x>": {"method": "ks+wasserstein", "statistic": 0.5, "threshold": 0.1, "p_value": 1e-9,
    ...             "drift": True, "cause": "distribution_shift", "reason": "p 1e-09 < alpha 0.001"}}}],
    ...     "summary": {"windows": 1, "windows_with_drift": 1, "windows_not_judged": 0,
    ...                 "first_drift": {"start": 0, "end": 3}, "features": {"<x>": 1}, "missing_features": []}}
    >>> page = render(ReportInput("t", drift, {"<x>": FeatureView("<x>", "numeric")}))
    >>> "&lt;x&gt;" in page and "<x>" not in page
    True
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from infersight.report import plots
from infersight.report.model import FeatureView, ReportInput
from infersight.report.words import COLUMNS, cause_class, cause_words, method_sentence

__all__ = ["render", "ordered_rows"]

_EXTRA_ROWS = ("multivariate", "prediction", "label_shift")
_MISSING_KINDS = ("absent", "null", "nan", "inf")
_GRID_WINDOWS = 60

_CSS = """
:root { --ref: #4c78a8; --cur: #e45756; --new: #b279a2; --ok: #54a24b; --warn: #eeca3b; --ink: #1d2530;
        --muted: #5b6573; --line: #d6dbe1; --bg: #f7f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0; background: var(--bg); }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 10px; }
h3 { font-size: 15px; margin: 0 0 6px; word-break: break-all; }
.sources { color: var(--muted); margin: 0 0 16px; } .sources dt { display: inline; font-weight: 600; }
.sources dd { display: inline; margin: 0 12px 0 4px; word-break: break-all; }
.summary { background: #fff; border: 1px solid var(--line); border-left: 6px solid var(--ok); padding: 12px 16px;
           border-radius: 6px; }
.summary.drifted { border-left-color: var(--cur); }
.summary .headline { font-size: 18px; font-weight: 600; margin: 0 0 6px; }
.summary ul { margin: 4px 0 0; padding-left: 20px; }
table { border-collapse: collapse; background: #fff; width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #eef1f4; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.name { word-break: break-all; max-width: 240px; }
tr.drift td.verdict { color: #fff; background: var(--cur); font-weight: 600; }
tr.missing td.verdict { color: #fff; background: var(--new); font-weight: 600; }
td.verdict { white-space: nowrap; }
.reason { color: var(--muted); font-size: 12px; }
.cls { font-size: 11px; border-radius: 3px; padding: 0 4px; border: 1px solid var(--line); color: var(--muted); }
details { margin: 8px 0; } summary { cursor: pointer; color: var(--muted); }
table.grid { width: auto; } .grid td { padding: 0; width: 14px; height: 14px; border: 1px solid #fff; }
.grid td.name { width: auto; padding: 0 8px 0 0; font-size: 12px; }
.grid .ok { background: #dfeedd; } .grid .near { background: var(--warn); } .grid .drift { background: var(--cur); }
.grid .gone { background: var(--new); } .grid .none { background: #eceff2; }
.cards { display: grid; grid-template-columns: 1fr; gap: 14px; }
.feature { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px; }
.feature.drift { border-left: 6px solid var(--cur); } .feature.missing { border-left: 6px solid var(--new); }
.plots { display: flex; flex-wrap: wrap; gap: 10px; }
.legend { font-size: 12px; color: var(--muted); margin: 2px 0 6px; }
.key { display: inline-block; width: 12px; height: 10px; margin: 0 4px 0 10px; vertical-align: middle; }
.key.ref { background: var(--ref); opacity: .45; } .key.cur { border: 2px solid var(--cur); }
.key.new { background: var(--new); }
.stats { font-size: 12px; width: auto; margin-top: 6px; } .stats td, .stats th { padding: 2px 8px; }
.note { font-size: 12px; color: var(--muted); margin: 4px 0 0; }
svg.plot { background: #fff; max-width: 100%; height: auto; }
svg .axis, svg .tick { stroke: #8a94a1; stroke-width: 1; } svg .grid { stroke: #eceff2; stroke-width: 1; }
svg .tl { font-size: 10px; fill: var(--muted); } svg .al { font-size: 11px; fill: var(--muted); }
svg .newl { fill: var(--new); font-weight: 600; }
svg rect.ref { fill: var(--ref); fill-opacity: .45; } svg rect.cur { fill: var(--cur); fill-opacity: .8; }
svg rect.new { fill: var(--new); }
svg .line { fill: none; stroke-width: 2; } svg .ref.line { stroke: var(--ref); } svg .cur.line { stroke: var(--cur); }
td.high { color: var(--cur); font-weight: 600; }
dl.meaning dt { font-weight: 600; margin-top: 6px; } dl.meaning dd { margin: 0 0 0 16px; }
footer { color: var(--muted); font-size: 12px; margin-top: 28px; }
"""


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


def _num_attr(x: Any) -> str:
    """A number as a data attribute, exactly (JSON's float text round-trips)."""
    return _e(json.dumps(x))


def _when(x: Any) -> str:
    return "" if x is None else str(x)


def _severity(f: Mapping[str, Any]) -> float:
    stat, thr = f.get("statistic"), f.get("threshold")
    return (stat / thr) if isinstance(stat, (int, float)) and isinstance(thr, (int, float)) and thr else 0.0


def ordered_rows(window: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """A window's rows as the drift table shows them: drifted features first, by statistic ÷
    threshold, then the rest, then the ``[multivariate]``, ``[prediction]`` and
    ``[label_shift]`` rows when present (the order ``infersight drift`` prints)."""
    feats = window.get("features", {})
    order = sorted(feats.items(), key=lambda kv: (not kv[1]["drift"], -_severity(kv[1]), kv[0]))
    extra = [(f"[{k}]", window[k]) for k in _EXTRA_ROWS if window.get(k)]
    return order + extra


def _since(windows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per feature drifted in the last window: the start of the run of drifted windows that
    ends with it (the window it has been drifting since)."""
    if not windows:
        return {}
    out: dict[str, Any] = {}
    for name, f in windows[-1].get("features", {}).items():
        if not f["drift"]:
            continue
        start = windows[-1]["start"]
        for w in reversed(windows):
            g = w.get("features", {}).get(name)
            if not g or not g["drift"]:
                break
            start = w["start"]
        out[name] = start
    return out


def _summary(report: ReportInput) -> str:
    drift = report.drift
    windows = drift.get("windows", [])
    s = drift.get("summary", {})
    last = windows[-1] if windows else {"features": {}, "multivariate": {}}
    feats = last.get("features", {})
    n_drift = sum(1 for f in feats.values() if f["drift"])
    several = len(windows) > 1
    where = f" in the latest window ({_e(last.get('start'))} .. {_e(last.get('end'))})" if several else ""
    head = f"{n_drift} of {len(feats)} feature{'s' * (len(feats) != 1)} drifted{where}"
    items: list[str] = []
    since = _since(windows)
    if report.range is not None and since:
        first = min(since.values(), key=lambda v: str(v))
        head += f", since {_e(first)}"
    drifted = [k for k, f in feats.items() if f["drift"] and f.get("cause") != "feature_missing"]
    if drifted:
        bits = []
        for k in sorted(drifted, key=lambda k: -_severity(feats[k])):
            words = cause_words(feats[k].get("cause"))
            when = f" (since {_e(since[k])})" if several and k in since else ""
            bits.append(f"<b>{_e(k)}</b>{when}: {_e(words) or 'moved'}")
        items.append("Drifted: " + "; ".join(bits) + ".")
    mv = last.get("multivariate") or {}
    if mv.get("drift"):
        items.append(f"The features' joint distribution moved (MMD, p {_e(plots.fmt(mv.get('p_value'), 2))}).")
    if s.get("missing_features"):
        items.append(
            "Missing from the data: "
            + ", ".join(f"<b>{_e(k)}</b>" for k in s["missing_features"])
            + " (counted as drift: a renamed or dropped column must not pass a gate)."
        )
    if several:
        first = s.get("first_drift")
        text = f"Drift in {_e(s.get('windows_with_drift', 0))} of {_e(s.get('windows', len(windows)))} windows"
        if first:
            text += f", first in window {_e(first['start'])} .. {_e(first['end'])}"
        items.append(text + ".")
    if s.get("windows_not_judged"):
        items.append(
            f"Not judged: {_e(s['windows_not_judged'])} window(s) had too few rows for a verdict (use larger windows)."
        )
    if report.unprofiled:
        items.append(
            "In the data but not in the reference (not judged): " + ", ".join(_e(k) for k in report.unprofiled) + "."
        )
    items.extend(_e(n) for n in report.notes)
    cls = "summary drifted" if (n_drift or mv.get("drift")) else "summary"
    body = "".join(f"<li>{i}</li>" for i in items)
    return (
        f'<section class="{cls}" id="summary"><p class="headline">{head}</p>'
        + (f"<ul>{body}</ul>" if body else "")
        + "</section>"
    )


def _verdict(f: Mapping[str, Any]) -> tuple[str, str]:
    if f.get("cause") == "feature_missing":
        return "missing", "missing"
    if f["drift"]:
        return "drift", "yes"
    return "ok", "no"


def _table(window: Mapping[str, Any], kinds: Mapping[str, str], anchors: Mapping[str, str]) -> str:
    head = (
        "<thead><tr><th>feature</th><th>kind</th><th>method</th><th>statistic</th><th>threshold</th>"
        "<th>p-value</th><th>drifted</th><th>cause hint</th></tr></thead>"
    )
    rows = []
    for name, f in ordered_rows(window):
        cls, verdict = _verdict(f)
        anchor = anchors.get(name)
        shown = f'<a href="#{anchor}">{_e(name)}</a>' if anchor else _e(name)
        cause = f.get("cause") if f["drift"] else None
        klass = cause_class(cause)
        words = cause_words(cause) if cause else ""
        hint = (
            (f'<span class="cls">{_e(klass)}</span> ' if klass else "")
            + _e(words)
            + (f'<div class="reason">{_e(f.get("reason") or "")}</div>' if f.get("reason") else "")
        )
        rows.append(
            f'<tr class="{cls}" data-feature="{_e(name)}" data-method="{_e(f.get("method"))}" '
            f'data-statistic="{_num_attr(f.get("statistic"))}" data-threshold="{_num_attr(f.get("threshold"))}" '
            f'data-p-value="{_num_attr(f.get("p_value"))}" data-drift="{_num_attr(bool(f["drift"]))}" '
            f'data-cause="{_e(f.get("cause") or "")}">'
            f'<td class="name">{shown}</td><td>{_e(kinds.get(name, ""))}</td><td>{_e(f.get("method"))}</td>'
            f'<td class="num" title="{_e(f.get("statistic"))}">{plots.fmt(f.get("statistic"))}</td>'
            f'<td class="num" title="{_e(f.get("threshold"))}">{plots.fmt(f.get("threshold"))}</td>'
            f'<td class="num" title="{_e(f.get("p_value"))}">{plots.fmt(f.get("p_value"), 2)}</td>'
            f'<td class="verdict">{verdict}</td><td>{hint}</td></tr>'
        )
    return f'<table class="drift-table">{head}<tbody>{"".join(rows)}</tbody></table>'


def _windows_section(report: ReportInput, anchors: Mapping[str, str]) -> str:
    windows = report.drift.get("windows", [])
    kinds = {k: v.kind for k, v in report.features.items()}
    if not windows:
        return '<p class="note">No windows in the range: nothing was judged.</p>'
    last = windows[-1]
    title = f"window {_e(last['start'])} .. {_e(last['end'])}, {_e(last.get('rows', 0))} rows"
    out = [f'<h2 id="drift">Drift</h2><p class="note">{title}</p>', _table(last, kinds, anchors)]
    if len(windows) > 1:
        out.append(_grid(windows))
        earlier = []
        for w in reversed(windows[:-1]):
            n = sum(1 for f in w.get("features", {}).values() if f["drift"])
            earlier.append(
                f"<details><summary>window {_e(w['start'])} .. {_e(w['end'])} ({_e(w.get('rows', 0))} rows): "
                f"{n} drifted</summary>{_table(w, kinds, anchors)}</details>"
            )
        out.append("<h3>Earlier windows</h3>" + "".join(earlier))
    return "".join(out)


def _grid(windows: Sequence[Mapping[str, Any]]) -> str:
    shown = list(windows[-_GRID_WINDOWS:])
    names: list[str] = []
    for w in shown:
        for k in w.get("features", {}):
            if k not in names:
                names.append(k)
    head = "".join(f'<th title="{_e(w["start"])} .. {_e(w["end"])}"></th>' for w in shown)
    rows = []
    for k in names:
        cells = []
        for w in shown:
            f = w.get("features", {}).get(k)
            if f is None or (f.get("statistic") is None and not f["drift"]):
                cls, tip = "none", "not judged"
            elif f.get("cause") == "feature_missing":
                cls, tip = "gone", "missing from the data"
            else:
                sev = _severity(f)
                cls = "drift" if f["drift"] else "near" if sev >= 0.5 else "ok"
                tip = f"{f['method']} {plots.fmt(f.get('statistic'))} / {plots.fmt(f.get('threshold'))}"
            cells.append(f'<td class="{cls}" title="{_e(w["start"])}: {_e(tip)}"></td>')
        rows.append(f'<tr><td class="name">{_e(k)}</td>{"".join(cells)}</tr>')
    more = f" (the last {_GRID_WINDOWS} of {len(windows)})" if len(windows) > len(shown) else ""
    return (
        f'<h3>Windows{more}</h3><p class="note">One column per window, oldest on the left: red drifted, yellow at '
        "least half way to the threshold, green below it, violet missing from the data, grey not judged.</p>"
        f'<table class="grid"><thead><tr><th></th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _pct(x: float) -> str:
    return f"{x:.1%}" if x else "0"


def _outside(view: FeatureView) -> str:
    sides = [s for s in (view.ref_numeric, view.cur_numeric) if s is not None and s.count]
    if not sides:
        return ""
    lo, hi = plots.plot_range(sides)
    bits = []
    for label, s in (("reference", view.ref_numeric), ("current", view.cur_numeric)):
        if s is None or not s.count:
            continue
        below = int((s.cum[s.edges < lo][-1]) if (s.edges < lo).any() else 0)
        above = int(s.count - (s.cum[s.edges <= hi][-1] if (s.edges <= hi).any() else 0))
        share = (below + above) / s.count
        if share > 0:
            shown = f"{share:.1%}" if share >= 0.0005 else "under 0.1%"
            bits.append(f"{shown} of the {label} ({plots.fmt(s.min)} .. {plots.fmt(s.max)})")
    return ("Outside the plotted range: " + "; ".join(bits) + ".") if bits else ""


def _stats_table(view: FeatureView) -> str:
    cells = []
    for label, s in (("reference", view.ref_numeric), ("current", view.cur_numeric)):
        if s is None or not s.count:
            continue
        q = s.quantiles
        cells.append(
            f"<tr><th>{label}</th><td class='num'>{s.count}</td><td class='num'>{plots.fmt(s.mean)}</td>"
            f"<td class='num'>{plots.fmt(s.std)}</td><td class='num'>{plots.fmt(s.min)}</td>"
            f"<td class='num'>{plots.fmt(q.get('p50'))}</td><td class='num'>{plots.fmt(s.max)}</td></tr>"
        )
    if not cells:
        return ""
    return (
        '<table class="stats"><thead><tr><th></th><th>values</th><th>mean</th><th>std</th><th>min</th>'
        f"<th>median</th><th>max</th></tr></thead><tbody>{''.join(cells)}</tbody></table>"
    )


def _card(view: FeatureView, f: Mapping[str, Any] | None, anchor: str, has_reference: bool) -> str:
    cls, verdict = _verdict(f) if f else ("ok", "")
    what = "length" if view.kind in ("text", "array") else "value"
    counted = view.kind in ("categorical", "boolean") or (
        view.ref_numeric is None and view.cur_numeric is None and (view.ref_categories or view.cur_categories)
    )
    svgs: list[str] = []
    legend = '<span class="key ref"></span>reference<span class="key cur"></span>current'
    if counted:
        svgs.append(plots.categories_svg(view.ref_categories, view.cur_categories))
        if view.ref_categories and view.cur_categories and set(view.cur_categories) - set(view.ref_categories):
            legend += '<span class="key new"></span>category the reference never saw'
    else:
        svgs.append(plots.histogram_svg(view.ref_numeric, view.cur_numeric, what))
        svgs.append(plots.ecdf_svg(view.ref_numeric, view.cur_numeric, what))
    notes = []
    if not view.in_data:
        notes.append("Not in the data: the reference's distribution only.")
    if not has_reference:
        notes.append("No reference profile given: the current distribution only (pass the reference file).")
    if not counted:
        notes.append(_outside(view))
    cause = f.get("cause") if f and f["drift"] else None
    head = (
        f'<h3>{_e(view.name)} <span class="cls">{_e(view.kind)}</span>'
        + (f' <span class="cls">{_e(verdict)}</span>' if f else "")
        + "</h3>"
    )
    words = f'<p class="note">{_e(cause_words(cause))}</p>' if cause else ""
    return (
        f'<section class="feature {cls}" id="{anchor}" data-feature="{_e(view.name)}">{head}{words}'
        f'<div class="legend">{legend}</div><div class="plots">{"".join(svgs)}</div>'
        + ("" if counted else _stats_table(view))
        + "".join(f'<p class="note">{_e(n)}</p>' for n in notes if n)
        + "</section>"
    )


def _plots_section(report: ReportInput, anchors: Mapping[str, str]) -> str:
    windows = report.drift.get("windows", [])
    last = windows[-1]["features"] if windows else {}
    has_reference = any(v.ref_rows for v in report.features.values())
    order = [k for k, _ in ordered_rows({"features": last}) if k in report.features]
    order += [k for k in report.features if k not in order]
    cards = [_card(report.features[k], last.get(k), anchors[k], has_reference) for k in order]
    span = "the whole range" if report.range is not None else "the whole data"
    return (
        '<h2 id="plots">Reference and current, per feature</h2>'
        f'<p class="note">Current is {span}. Numbers: share of rows per bin (the histogram) and the cumulative '
        "distributions (the widest vertical gap between the curves is the Kolmogorov–Smirnov D). "
        "Categories: share of rows per category.</p>"
        f'<div class="cards">{"".join(cards)}</div>'
    )


def _quality_section(report: ReportInput) -> str:
    rows = []
    for name, v in report.features.items():
        if not v.in_data:
            rows.append(
                f'<tr class="missing" data-feature="{_e(name)}"><td class="name">{_e(name)}</td><td>{_e(v.kind)}</td>'
                f'<td class="num">{v.ref_rows}</td><td class="num">-</td>'
                f'<td colspan="{len(_MISSING_KINDS) + 1}">not in the data</td><td></td></tr>'
            )
            continue
        cells = []
        for kind in _MISSING_KINDS:
            r, c = v.missing_rate("reference", kind), v.missing_rate("current", kind)
            high = " high" if c > r + 0.01 else ""
            cells.append(f'<td class="num{high}" title="reference {_pct(r)}">{_pct(c)}</td>')
        r, c = v.missing_rate("reference"), v.missing_rate("current")
        high = " high" if c > r + 0.01 else ""
        broken = ", ".join(f"{_e(rule)}: {n}" for rule, n in sorted(v.violations.items())) or "none"
        rows.append(
            f'<tr data-feature="{_e(name)}"><td class="name">{_e(name)}</td><td>{_e(v.kind)}</td>'
            f'<td class="num">{v.ref_rows}</td><td class="num">{v.cur_rows}</td>'
            f'<td class="num{high}">{_pct(c)} <span class="reason">(ref. {_pct(r)})</span></td>{"".join(cells)}'
            f"<td>{broken}</td></tr>"
        )
    head = (
        "<thead><tr><th>feature</th><th>kind</th><th>rows (ref.)</th><th>rows</th><th>missing</th>"
        + "".join(f"<th>{k}</th>" for k in _MISSING_KINDS)
        + "<th>schema violations (rows)</th></tr></thead>"
    )
    extra = ""
    if report.unprofiled:
        extra = (
            '<p class="note">Columns the reference does not know (not judged): '
            + ", ".join(_e(k) for k in report.unprofiled)
            + ".</p>"
        )
    return (
        '<h2 id="quality">Data quality</h2>'
        '<p class="note">Missing is null, NaN or absent (a key the record lacked) over all rows; Inf is counted '
        "apart. Rates in red rose more than one point against the reference (hover for its value). Schema "
        "violations count rows breaking a rule of the schema inferred with the reference.</p>"
        f'<table class="quality">{head}<tbody>{"".join(rows)}</tbody></table>{extra}'
    )


def _meaning_section(report: ReportInput) -> str:
    methods: list[str] = []
    for w in report.drift.get("windows", []):
        for _, f in ordered_rows(w):
            if f.get("method") and f["method"] not in methods:
                methods.append(f["method"])
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in COLUMNS.items())
    items += "".join(f"<dt>{_e(m)}</dt><dd>{_e(method_sentence(m))}</dd>" for m in methods)
    items += (
        "<dt>cause classes</dt><dd>pipeline: fix it upstream of the model (units, missing values, new "
        "categories, a column gone); world: the population changed: confirm with the data owners and check "
        "quality on labelled traffic before retraining.</dd>"
    )
    return f'<h2 id="meaning">What the numbers mean</h2><dl class="meaning">{items}</dl>'


def _json_island(doc: Mapping[str, Any]) -> str:
    # "<" escaped so no value can close the block; the browser never runs this type.
    text = json.dumps(doc, allow_nan=False, sort_keys=True).replace("<", "\\u003c").replace(">", "\\u003e")
    return f'<script type="application/json" id="infersight-drift">{text}</script>'


def render(report: ReportInput, generated: dt.datetime | None = None) -> str:
    """The page for ``report`` (a complete HTML5 document)."""
    when = (generated or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M:%S UTC")
    anchors = {name: f"feature-{i}" for i, name in enumerate(report.features)}
    sources = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in report.sources)
    body = [
        f"<h1>{_e(report.title)}</h1>",
        f'<dl class="sources">{sources}<dt>generated</dt><dd>{_e(when)}</dd></dl>',
        _summary(report),
        _windows_section(report, anchors),
        _plots_section(report, anchors),
        _quality_section(report),
        _meaning_section(report),
        "<footer>Written by <code>infersight report</code>. The numbers are those of "
        "<code>infersight drift --format json</code> on the same inputs (embedded below as JSON).</footer>",
        _json_island(report.drift),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        'img-src data:">'
        f"<title>{_e(report.title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )
