"""Reference-versus-current plots as inline SVG (no script, no network).

Numbers are drawn from CDF knots (:class:`NumericSummary` ``edges``/``cum``), whichever side
they came from (a profile, raw data, or a processor's merged sketch), so both sides are cut
into the same bins: a histogram overlay over the middle 99% of both, and the two ECDFs.
Categories are bar pairs, largest first, with categories the reference never saw marked
``new``. Every text that came from the data is escaped; colours come from the page's CSS
classes (``ref``, ``cur``, ``new``).

Example:
    >>> svg = categories_svg({"a": 3}, {"a": 1, "<b>": 1})
    >>> "&lt;b&gt; (new)" in svg and "<b>" not in svg
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from html import escape

import numpy as np
import numpy.typing as npt

from infersight.stats.reference import NumericSummary

__all__ = ["histogram_svg", "ecdf_svg", "categories_svg", "fmt", "plot_range"]

W, H = 440, 190
LEFT, RIGHT, TOP, BOTTOM = 46, 26, 10, 34
BINS = 40
TOP_CATEGORIES = 12
TOP_UNSEEN = 4


def fmt(x: float | None, digits: int = 3) -> str:
    """A number as a reader wants it in a table: ``digits`` significant figures, ``-`` for none."""
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.{digits}g}"


def _cdf(s: NumericSummary, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Share of values <= ``x`` (linear between knots)."""
    F = s.cum / max(s.count, 1)
    out: npt.NDArray[np.float64] = np.interp(x, s.edges, F, left=0.0, right=1.0)
    return out


def _quantile(s: NumericSummary, q: float) -> float:
    F = s.cum / max(s.count, 1)
    return float(np.interp(q, F, s.edges))


def plot_range(sides: list[NumericSummary]) -> tuple[float, float]:
    """The x range shown: from the lowest 0.5% quantile to the highest 99.5% of the sides, so
    one extreme value does not squash the picture (what lies outside is said in words)."""
    lo = min(_quantile(s, 0.005) for s in sides)
    hi = max(_quantile(s, 0.995) for s in sides)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi <= lo:
        pad = abs(lo) * 0.05 or 0.5
        lo, hi = lo - pad, hi + pad
    return lo, hi


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    step = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(step)) if step > 0 else 1.0
    nice = min((m * mag for m in (1, 2, 2.5, 5, 10)), key=lambda s: abs(s - step))
    first = math.ceil(lo / nice) * nice
    out: list[float] = []
    t = first
    while t <= hi + nice * 1e-9 and len(out) < 12:
        out.append(0.0 if abs(t) < nice * 1e-9 else t)
        t += nice
    return out


def _frame(label_x: str, label_y: str, xs: list[tuple[float, str]], ys: list[tuple[float, str]]) -> list[str]:
    """Axes, tick labels and axis titles; ``xs``/``ys`` are (pixel, text) pairs."""
    x0, x1, y0, y1 = LEFT, W - RIGHT, H - BOTTOM, TOP
    parts = [f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}"/>']
    parts.append(f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}"/>')
    for px, text in xs:
        parts.append(f'<line class="tick" x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y0 + 4}"/>')
        parts.append(f'<text class="tl" x="{px:.1f}" y="{y0 + 15}" text-anchor="middle">{escape(text)}</text>')
    for py, text in ys:
        parts.append(f'<line class="grid" x1="{x0}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}"/>')
        parts.append(f'<text class="tl" x="{x0 - 4}" y="{py + 3:.1f}" text-anchor="end">{escape(text)}</text>')
    parts.append(f'<text class="al" x="{(x0 + x1) / 2:.1f}" y="{H - 4}" text-anchor="middle">{escape(label_x)}</text>')
    parts.append(
        f'<text class="al" x="12" y="{(y0 + y1) / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {(y0 + y1) / 2:.1f})">{escape(label_y)}</text>'
    )
    return parts


def _svg(kind: str, title: str, body: list[str], height: int = H) -> str:
    return (
        f'<svg class="plot {kind}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" '
        f'width="{W}" height="{height}" role="img"><title>{escape(title)}</title>' + "".join(body) + "</svg>"
    )


def histogram_svg(ref: NumericSummary | None, cur: NumericSummary | None, what: str = "value") -> str:
    """Share of rows per bin, reference as filled bars and current as an outline, on common bins."""
    sides = [s for s in (ref, cur) if s is not None and s.count]
    if not sides:
        return _empty("histogram", "no values to plot")
    lo, hi = plot_range(sides)
    edges = np.linspace(lo, hi, BINS + 1)
    shares = {id(s): np.diff(_cdf(s, edges)) for s in sides}
    top = max(float(v.max()) for v in shares.values()) or 1.0
    top *= 1.1
    x0, x1, y0, y1 = LEFT, W - RIGHT, H - BOTTOM, TOP

    def px(x: float) -> float:
        return x0 + (x - lo) / (hi - lo) * (x1 - x0)

    def py(share: float) -> float:
        return y0 - share / top * (y0 - y1)

    body = _frame(
        what,
        "share of rows",
        [(px(t), fmt(t)) for t in _ticks(lo, hi)],
        [(py(t), f"{t:.0%}" if top > 0.05 else f"{t:.1%}") for t in _ticks(0.0, top, 4) if t > 0],
    )
    if ref is not None and ref.count:
        s = shares[id(ref)]
        for i in range(BINS):
            if s[i] > 0:
                body.append(
                    f'<rect class="ref" x="{px(edges[i]):.1f}" y="{py(s[i]):.1f}" '
                    f'width="{px(edges[i + 1]) - px(edges[i]):.1f}" height="{y0 - py(s[i]):.1f}"/>'
                )
    if cur is not None and cur.count:
        s = shares[id(cur)]
        pts = [f"{px(edges[0]):.1f},{y0}"]
        for i in range(BINS):
            pts.append(f"{px(edges[i]):.1f},{py(s[i]):.1f}")
            pts.append(f"{px(edges[i + 1]):.1f},{py(s[i]):.1f}")
        pts.append(f"{px(edges[-1]):.1f},{y0}")
        body.append(f'<polyline class="cur line" points="{" ".join(pts)}"/>')
    return _svg("histogram", f"histogram of {what}: reference and current", body)


def ecdf_svg(ref: NumericSummary | None, cur: NumericSummary | None, what: str = "value") -> str:
    """The two cumulative distributions: the largest vertical gap between them is the KS D."""
    sides = [s for s in (ref, cur) if s is not None and s.count]
    if not sides:
        return _empty("ecdf", "no values to plot")
    lo, hi = plot_range(sides)
    x0, x1, y0, y1 = LEFT, W - RIGHT, H - BOTTOM, TOP
    grid = np.linspace(lo, hi, 161)

    def px(x: float) -> float:
        return x0 + (x - lo) / (hi - lo) * (x1 - x0)

    def py(f: float) -> float:
        return y0 - f * (y0 - y1)

    body = _frame(
        what,
        "share ≤ x",
        [(px(t), fmt(t)) for t in _ticks(lo, hi)],
        [(py(f), f"{f:.0%}") for f in (0.25, 0.5, 0.75, 1.0)],
    )
    for cls, s in (("ref line", ref), ("cur line", cur)):
        if s is None or not s.count:
            continue
        F = _cdf(s, grid)
        pts = " ".join(f"{px(x):.1f},{py(f):.1f}" for x, f in zip(grid.tolist(), F.tolist()))
        body.append(f'<polyline class="{cls}" points="{pts}"/>')
    return _svg("ecdf", f"cumulative distribution of {what}: reference and current", body)


def _empty(kind: str, text: str) -> str:
    return _svg(
        kind,
        text,
        [f'<text class="al" x="{W / 2}" y="{H / 2}" text-anchor="middle">{escape(text)}</text>'],
    )


def categories_svg(ref: Mapping[str, int] | None, cur: Mapping[str, int] | None) -> str:
    """Bar pairs, share of rows per category (reference above current), the most common
    :data:`TOP_CATEGORIES` on either side; the rest pooled; never-seen categories marked."""
    rt, ct = sum((ref or {}).values()), sum((cur or {}).values())
    if not rt and not ct:
        return _empty("categories", "no categories to plot")
    rs = {k: v / rt for k, v in (ref or {}).items()} if rt else {}
    cs = {k: v / ct for k, v in (cur or {}).items()} if ct else {}
    names = sorted(set(rs) | set(cs), key=lambda k: (-max(rs.get(k, 0.0), cs.get(k, 0.0)), k))
    # Never-seen categories are the finding a reader looks for: a few of them are always drawn,
    # even when they are rarer than the reference's tail.
    unseen = [k for k in names if rs and k not in rs][:TOP_UNSEEN]
    shown = [k for k in names if k not in unseen][: TOP_CATEGORIES - len(unseen)] + unseen
    rest = [k for k in names if k not in shown]
    rows: list[tuple[str, float, float, bool]] = [
        (k, rs.get(k, 0.0), cs.get(k, 0.0), bool(rs) and k not in rs and cs.get(k, 0.0) > 0) for k in shown
    ]
    if rest:
        rows.append(
            (
                f"({len(rest)} more)",
                sum(rs.get(k, 0.0) for k in rest),
                sum(cs.get(k, 0.0) for k in rest),
                False,
            )
        )
    label_w, bar = 190, 9
    row_h = 2 * bar + 8
    height = TOP + row_h * len(rows) + 24
    x0, x1 = label_w, W - 52
    top = max(max(r, c) for _, r, c, _ in rows) or 1.0
    body: list[str] = []
    for i, (name, r, c, new) in enumerate(rows):
        y = TOP + i * row_h
        label = name if len(name) <= 20 else name[:19] + "…"
        shown_name = f"{label} (new)" if new else label
        body.append(
            f'<text class="tl{" newl" if new else ""}" x="{x0 - 6}" y="{y + bar + 3}" text-anchor="end">'
            f"<title>{escape(name)}</title>{escape(shown_name)}</text>"
        )
        for j, (cls, share) in enumerate((("ref", r), ("new" if new else "cur", c))):
            if not (rt if j == 0 else ct):
                continue  # that side is not known (no reference given, or not in the data)
            width = share / top * (x1 - x0)
            yy = y + j * bar
            body.append(f'<rect class="{cls}" x="{x0}" y="{yy}" width="{width:.1f}" height="{bar - 1}"/>')
            body.append(f'<text class="tl" x="{x0 + width + 3:.1f}" y="{yy + bar - 1}">{share:.1%}</text>')
    body.append(f'<line class="axis" x1="{x0}" y1="{TOP - 2}" x2="{x0}" y2="{TOP + row_h * len(rows)}"/>')
    body.append(
        f'<text class="al" x="{(x0 + x1) / 2:.1f}" y="{height - 6}" text-anchor="middle">share of rows per category</text>'
    )
    return _svg("categories", "category shares: reference and current", body, height=height)
