"""Statistical quality bars of the default drift policy (issue 4), printed as figures.

* false-alarm cells: windows drawn from the reference distribution (normal, log-normal,
  50-level Zipf categorical) for n in {100, 1k, 10k, 100k, 1M}; share of (window, feature)
  cells flagged. Bar: <= 1%.
* power at n = 5000: 0.2-sigma mean shift, 20% (relative) rise of the top category's share,
  2x scale change. Bar: >= 95%.
* cause hints on injected unit changes, NaN jumps and new categories. Bar: >= 90% right.
* discrete features (Poisson counts, integers 0..5, a 0/1 flag, 30% of values at a clip
  bound, prices rounded to cents) and the continuous ones, every window scored from its OTel
  sketch (what the processor always sees): false alarms at n in {100, 1k, 10k, 100k} (bar
  <= 1%) and power at n = 5000 (bar >= 95%) for Poisson rate +20%, flag share 30% -> 36%,
  clip share 30% -> 45% (0.2 sigma), integers tilted towards 5, prices +10%, and the 0.2-sigma shift.

* alert fatigue (docs/alert-fatigue.md): long null streams scored as the processor scores
  them (numeric windows as OTel sketches, categories as counts, 2% missing values in some
  features), per-cell false-alarm rate and alarms of an alert needing N = 1, 2, 3 consecutive
  windows, at n = 500 and 5000 rows per window; then the expected false alarms per model per
  30 days for F features × W windows a day from the measured rate, and the power of the
  quality-bar shifts per window and within 12 windows with persistence.

Windows of 100k and 1M rows are scored from their OTel sketches / category counts (what the
processor sees); smaller ones from raw samples in the first table. Runtime is bounded by
``--windows``.

    python bench/quality.py --windows 1000        # the issue's figure (a few minutes)
    python bench/quality.py --windows 200         # quick look
    python bench/quality.py --only fatigue --fatigue-windows 3000   # the alert-fatigue figures
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from infersight.stats.drift import DriftPolicy
from infersight.stats.reference import Reference
from infersight.stats.sketch import ExpHistogram
from infersight.stats.windows import FeatureWindow

REF_ROWS = 100_000
LEVELS = np.array([f"k{i}" for i in range(50)], dtype=object)
ZIPF = 1.0 / np.arange(1, 51)
ZIPF /= ZIPF.sum()


def draw(name: str, n: int, rng: np.random.Generator, shift: str | None = None) -> np.ndarray:
    if name == "normal":
        x = rng.normal(0.0, 1.0, n)
        if shift == "mean":
            x += 0.2
        if shift == "scale":
            x *= 2
        return x
    if name == "lognormal":
        x = rng.lognormal(0.0, 1.0, n)
        return x * 2 if shift == "scale" else x
    p = ZIPF.copy()
    if shift == "share":
        p[0] *= 1.2
        p[1:] *= (1 - p[0]) / p[1:].sum()
    return LEVELS[rng.choice(50, n, p=p)]


CLIP_30, CLIP_45 = -0.5244005127080407, -0.12566134685507402  # N(0,1) quantiles 0.30 and 0.45
DISCRETE = ("poisson", "int0_5", "flag01", "clip30", "price")


def draw_discrete(name: str, n: int, rng: np.random.Generator, shift: bool = False) -> np.ndarray:
    if name == "poisson":
        return rng.poisson(1.8 if shift else 1.5, n).astype(float)
    if name == "int0_5":
        return rng.choice(6, n, p=[0.13, 0.15, 0.16, 0.17, 0.19, 0.20] if shift else [1 / 6] * 6).astype(float)
    if name == "flag01":
        return (rng.random(n) < (0.36 if shift else 0.30)).astype(float)
    if name == "clip30":
        return np.maximum(rng.normal(0.0, 1.0, n), CLIP_45 if shift else CLIP_30)
    return np.round(rng.lognormal(2.5, 0.6, n) * (1.1 if shift else 1.0), 2)  # price, cents


def window(name: str, n: int, rng: np.random.Generator, shift: str | None = None) -> FeatureWindow:
    kind = "categorical" if name == "categorical" else "numeric"
    if n >= 100_000:  # as the processor sees big windows: sketch / counts only
        if kind == "categorical":
            counts = rng.multinomial(n, _shifted(shift))
            return FeatureWindow(kind, n, {}, None, {LEVELS[i]: int(c) for i, c in enumerate(counts) if c})
        return FeatureWindow(kind, n, {}, ExpHistogram.from_values(draw(name, n, rng, shift)))
    return FeatureWindow.from_column(draw(name, n, rng, shift), kind, keep_values=True)


def _shifted(shift: str | None) -> np.ndarray:
    p = ZIPF.copy()
    if shift == "share":
        p[0] *= 1.2
        p[1:] *= (1 - p[0]) / p[1:].sum()
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--windows", type=int, default=1000)
    ap.add_argument("--big-windows", type=int, default=None, help="windows for n >= 100k (default: --windows // 5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fatigue-windows", type=int, default=2000, help="windows per null stream (alert fatigue)")
    ap.add_argument("--only", choices=("all", "fatigue"), default="all")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    if args.only == "fatigue":
        fatigue(rng, args.fatigue_windows)
        return
    data = {
        "normal": draw("normal", REF_ROWS, rng),
        "lognormal": draw("lognormal", REF_ROWS, rng),
        "categorical": draw("categorical", REF_ROWS, rng),
    }
    data.update({name: draw_discrete(name, REF_ROWS, rng) for name in DISCRETE})
    ref = Reference.from_data(
        data,
        model="bench",
        multivariate=False,
    )
    policy = DriftPolicy()
    big = args.big_windows or max(args.windows // 5, 20)
    print(
        f"reference {REF_ROWS} rows; policy alpha={policy.alpha}, min_effect={policy.min_effect}, min_effect_categorical={policy.min_effect_categorical}"
    )
    print("\nfalse-alarm cells (bar <= 1%)")
    print(f"{'n':>9} {'windows':>8} {'normal':>8} {'lognorm':>8} {'categ':>8} {'all':>8} {'s':>6}")
    for n in (100, 1_000, 10_000, 100_000, 1_000_000):
        t0 = time.perf_counter()
        w = args.windows if n < 100_000 else big
        rates = []
        for name in ("normal", "lognormal", "categorical"):
            hits = sum(policy.score_feature(ref.features[name], window(name, n, rng)).drift for _ in range(w))
            rates.append(hits / w)
        print(
            f"{n:>9} {w:>8} "
            + " ".join(f"{r:>8.2%}" for r in rates)
            + f" {np.mean(rates):>8.2%} {time.perf_counter() - t0:>6.1f}"
        )
    print("\npower at n=5000 (bar >= 95%)")
    for name, shift in (("normal", "mean"), ("categorical", "share"), ("normal", "scale"), ("lognormal", "scale")):
        hits = sum(
            policy.score_feature(ref.features[name], window(name, 5000, rng, shift)).drift for _ in range(args.windows)
        )
        print(f"  {name:<12} {shift:<6} {hits / args.windows:>8.2%}")
    print("\ncause hints at n=5000 (bar >= 90% right)")
    cases = {
        "unit_change:x1000": ("normal", lambda x, r: x * 1000),
        "unit_change:/60": ("lognormal", lambda x, r: x / 60),
        "unit_change:x100": ("lognormal", lambda x, r: x * 100),
        "missing_rate_jump": ("normal", lambda x, r: np.where(r.random(x.size) < 0.05, np.nan, x)),
        "unseen_categories": (
            "categorical",
            lambda x, r: np.where(r.random(x.size) < 0.03, "new_level", x).astype(object),
        ),
    }
    for cause, (name, inject) in cases.items():
        kind = "categorical" if name == "categorical" else "numeric"
        right = 0
        for _ in range(args.windows):
            col = inject(draw(name, 5000, rng), rng)
            right += (
                policy.score_feature(ref.features[name], FeatureWindow.from_column(col, kind, keep_values=True)).cause
                == cause
            )
        print(f"  {cause:<20} {right / args.windows:>8.2%}")
    sketched(ref, policy, rng, args.windows, big)
    fatigue(rng, args.fatigue_windows)


def sketched(ref: Reference, policy: DriftPolicy, rng: np.random.Generator, windows: int, big: int) -> None:
    """Every window as an OTel sketch: discrete features and the continuous ones."""
    names = ("normal", "lognormal") + DISCRETE

    def values(name: str, n: int, shift: bool) -> np.ndarray:
        if name in DISCRETE:
            return draw_discrete(name, n, rng, shift)
        return draw(name, n, rng, "mean" if shift and name == "normal" else ("scale" if shift else None))

    def flagged(name: str, n: int, shift: bool = False) -> bool:
        return policy.score_feature(
            ref.features[name], FeatureWindow("numeric", n, {}, ExpHistogram.from_values(values(name, n, shift)))
        ).drift

    print("\nscored from OTel sketches: false-alarm cells (bar <= 1%)")
    print(f"{'n':>9} {'windows':>8} " + " ".join(f"{k[:8]:>8}" for k in names) + f" {'all':>8} {'s':>6}")
    for n in (100, 1_000, 10_000, 100_000):
        t0 = time.perf_counter()
        w = windows if n < 100_000 else big
        rates = [sum(flagged(name, n) for _ in range(w)) / w for name in names]
        print(
            f"{n:>9} {w:>8} "
            + " ".join(f"{r:>8.2%}" for r in rates)
            + f" {np.mean(rates):>8.2%} {time.perf_counter() - t0:>6.1f}"
        )
    print("\nscored from OTel sketches: power at n=5000 (bar >= 95%)")
    shifts = {
        "normal": "mean +0.2 sigma",
        "lognormal": "scale x2",
        "poisson": "rate 1.5 -> 1.8",
        "int0_5": "tilted to 5",
        "flag01": "share 30% -> 36%",
        "clip30": "at bound 30% -> 45%",
        "price": "prices +10%",
    }
    for name in names:
        hits = sum(flagged(name, 5000, True) for _ in range(windows))
        print(f"  {name:<10} {shifts[name]:<20} {hits / windows:>8.2%}")


def _runs(flags: np.ndarray, n: int) -> int:
    """Alarms of an alert needing ``n`` consecutive flagged windows (one per run)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return int(np.count_nonzero(edges[1::2] - edges[::2] >= n))


def fatigue(rng: np.random.Generator, windows: int) -> None:
    """Null streams and shifts as the processor sees them; the budget arithmetic on the
    measured rates (docs/alert-fatigue.md)."""
    from infersight.stats.drift.fatigue import DEFAULT_PERSISTENCE, detection_probability, expected_false_alarms
    from infersight.stats.windows import WindowStats

    gaps = 0.02
    numeric = ("normal", "lognormal", "poisson", "price")
    cats = {"cat2": 2, "cat5": 5, "cat20": 20, "cat50": 50}
    data: dict[str, np.ndarray] = {}
    for name in numeric:
        x = draw_discrete(name, REF_ROWS, rng) if name in DISCRETE else draw(name, REF_ROWS, rng)
        data[name] = x
        x = x.copy()
        x[rng.random(REF_ROWS) < gaps] = np.nan
        data[name + "_gaps"] = x
    for name, k in cats.items():
        p = 1.0 / np.arange(1, k + 1)
        data[name] = LEVELS[rng.choice(k, REF_ROWS, p=p / p.sum())]
        c = data[name].copy()
        c[rng.random(REF_ROWS) < gaps] = None
        data[name + "_gaps"] = c
    ref = Reference.from_data(data, model="fatigue", multivariate=False)
    policy = DriftPolicy()

    def numeric_window(name: str, n: int, shift: str | None) -> FeatureWindow:
        base = name.removesuffix("_gaps")
        miss = int(rng.binomial(n, gaps)) if name.endswith("_gaps") else 0
        if base in DISCRETE:
            x = draw_discrete(base, n - miss, rng)
        else:
            x = draw(base, n - miss, rng, shift)
        stored = WindowStats(sketches={"value": ExpHistogram.from_values(x)})
        if miss:
            stored.counters["missing"] = {"nan": float(miss)}
        return FeatureWindow.from_stats(stored, "numeric")

    def category_window(name: str, n: int, shift: str | None) -> FeatureWindow:
        k = cats[name.removesuffix("_gaps")]
        p = 1.0 / np.arange(1, k + 1)
        p /= p.sum()
        if shift == "share":
            p[0] *= 1.2
            p[1:] *= (1 - p[0]) / p[1:].sum()
        miss = int(rng.binomial(n, gaps)) if name.endswith("_gaps") else 0
        counts = rng.multinomial(n - miss, p)
        stored = WindowStats(counters={"category": {str(LEVELS[i]): float(c) for i, c in enumerate(counts) if c}})
        if miss:
            stored.counters["missing"] = {"null": float(miss)}
        return FeatureWindow.from_stats(stored, "categorical")

    def stream(name: str, n: int, count: int, shift: str | None = None) -> np.ndarray:
        make = category_window if name.startswith("cat") else numeric_window
        res = [policy.score_feature(ref.features[name], make(name, n, shift)) for _ in range(count)]
        return np.array([r.drift for r in res])

    print(f"\nalert fatigue: null streams of {windows} windows per feature (sketch path; *_gaps: 2% missing)")
    print(f"{'n':>6} {'feature':<16} {'cells':>7} {'alarms':>7} {'rate':>9} {'N=2':>5} {'N=3':>5}")
    rates: dict[int, float] = {}
    for n in (500, 5000):
        t0 = time.perf_counter()
        total = cells = 0
        runs2 = runs3 = 0
        for name in sorted(ref.features):
            flags = stream(name, n, windows)
            total += int(flags.sum())
            cells += flags.size
            runs2 += _runs(flags, 2)
            runs3 += _runs(flags, 3)
            print(
                f"{n:>6} {name:<16} {flags.size:>7} {int(flags.sum()):>7} {flags.mean():>9.2e} "
                f"{_runs(flags, 2):>5} {_runs(flags, 3):>5}"
            )
        rates[n] = total / cells
        upper = _poisson_upper(total, 0.95) / cells
        print(
            f"{n:>6} {'all':<16} {cells:>7} {total:>7} {rates[n]:>9.2e} {runs2:>5} {runs3:>5}"
            f"   (95% upper {upper:.2e}; alpha {policy.alpha:g}; {time.perf_counter() - t0:.0f} s)"
        )
        rates[-n] = upper
    print("\nexpected false alarms per model per 30 days (measured rate's 95% upper bound, n=500 | bound 2 alpha)")
    print(f"{'F':>5} {'window':>7} {'W/day':>6} " + " ".join(f"{'N=' + str(k):>21}" for k in (1, 2, 3)))
    for f in (10, 50, 100):
        for label, w in (("5m", 288), ("1h", 24), ("1d", 1)):
            cells_txt = []
            for k in (1, 2, 3):
                meas = expected_false_alarms(f, w, persistence=k, rate=rates[-500])
                bound = expected_false_alarms(f, w, persistence=k)
                cells_txt.append(f"{meas:>10.3g} | {bound:<8.3g}")
            print(f"{f:>5} {label:>7} {w:>6} " + " ".join(cells_txt))
    print(f"\npower per window and within 12 windows of the shift's start (N = 1, 2, {DEFAULT_PERSISTENCE})")
    print(f"{'n':>6} {'shift':<34} {'per window':>10} {'N=1':>7} {'N=2':>7} {'N=3':>7} {'N=3 measured':>13}")
    shifts = (
        ("normal", "mean", "normal mean +0.2 sigma"),
        ("normal", "scale", "normal scale x2"),
        ("lognormal", "scale", "lognormal scale x2"),
        ("cat20", "share", "top category +20% (rel.)"),
        ("cat5", "share", "top category +20% (rel.)"),
    )
    for n in (500, 5000):
        for name, shift, label in shifts:
            flags = stream(name if name.startswith("cat") else name, n, max(windows // 4, 240), shift)
            power = float(flags.mean())
            # the stream cut into 12-window incidents: share with a run of 3 inside
            chunks = flags[: flags.size // 12 * 12].reshape(-1, 12)
            seen = float(np.mean([_runs(c, DEFAULT_PERSISTENCE) > 0 for c in chunks]))
            within = [detection_probability(power, persistence=k, windows=12) for k in (1, 2, 3)]
            print(
                f"{n:>6} {label + ' (' + name + ')':<34} {power:>10.1%} "
                + " ".join(f"{v:>7.1%}" for v in within)
                + f" {seen:>13.1%}"
            )


def _poisson_upper(k: int, level: float) -> float:
    """The upper ``level`` confidence bound of a Poisson mean after ``k`` events (exact)."""
    from scipy.special import gammaincinv

    return float(gammaincinv(k + 1, level))


if __name__ == "__main__":
    main()
