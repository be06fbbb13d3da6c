"""The evaluation loop on its own (stored windows written directly, explicit clock): evaluators
plug in, a failing one is counted and never stops the others, a past window serves as the
reference, cumulative windows add up, and a dead export endpoint never holds evaluation up."""

from __future__ import annotations

import numpy as np
import pytest

from infersight.processor.evaluate.findings import EvaluationContext, Finding
from infersight.processor.evaluate.loop import EvaluationLoop, locate_since
from infersight.processor.evaluate.outputs import FindingOutputs
from infersight.processor.evaluate.settings import parse_evaluation, parse_models
from infersight.processor.selfmetrics import Registry
from infersight.processor.storage import FEATURE, WindowKey, WriteBatch, open_storage
from infersight.stats.windows import FeatureWindow
from support.otlp_sink import OtlpSink

T0 = 1_700_006_400  # a multiple of a day
SIZE = 60


def _write(store, model: str, start: int, columns: dict[str, np.ndarray]) -> None:
    b = WriteBatch()
    for name, x in columns.items():
        b.windows[WindowKey(model, "1", FEATURE, name, SIZE, start)] = FeatureWindow.from_column(
            x, "numeric"
        ).to_stats()
    store.write(b)


@pytest.fixture
def store(tmp_path):
    st = open_storage(f"sqlite:///{tmp_path}/s.db", (SIZE, 3600))
    yield st
    st.close()


class Age:
    """A plug-in evaluator of another kind, as the quality worker's is appended."""

    name = "age"

    def evaluate(self, ctx: EvaluationContext) -> list[Finding]:
        return [Finding(ctx.model, "", ctx.size, ctx.start, "age", "model", "ok", statistic=ctx.now - ctx.start)]


class Broken:
    name = "broken"

    def evaluate(self, ctx: EvaluationContext) -> list[Finding]:
        raise RuntimeError("boom")


def test_evaluators_plug_in_and_a_failing_one_is_counted_not_fatal(store):
    rng = np.random.default_rng(0)
    for i in range(3):
        _write(store, "m", T0 + i * SIZE, {"x": rng.normal(size=200)})
    reg = Registry()
    got: list[list[Finding]] = []
    loop = EvaluationLoop(
        store,
        parse_models({"*": {"windows": ["1m"]}}, "models"),
        parse_evaluation({"lateness": 0}, "evaluation"),
        registry=reg,
        on_findings=got.append,
    )
    loop.evaluators.insert(0, Broken())
    loop.evaluators.append(Age())
    made = loop.run_once(now=T0 + 3 * SIZE)
    assert reg.value("infersight_processor_evaluator_errors_total", evaluator="broken") == 3
    ages = [f for f in made if f.kind == "age"]
    assert [f.window_start for f in ages] == [T0, T0 + SIZE, T0 + 2 * SIZE]
    assert [len(g) for g in got] == [len([f for f in made if f.window_start == T0 + i * SIZE]) for i in range(3)]
    assert "ml_model_age_seconds{" in loop.outputs.render_prometheus()


def test_a_window_is_evaluated_only_after_its_lateness(store):
    rng = np.random.default_rng(1)
    _write(store, "m", T0, {"x": rng.normal(size=200)})
    loop = EvaluationLoop(
        store, parse_models({"*": {"windows": ["1m"]}}, "models"), parse_evaluation({"lateness": "30s"}, "evaluation")
    )
    assert loop.run_once(now=T0 + SIZE + 29) == []
    assert {f.window_start for f in loop.run_once(now=T0 + SIZE + 30)} == {T0}


def test_without_a_profile_the_same_window_a_day_earlier_is_the_reference(store):
    rng = np.random.default_rng(2)
    for day in (0, 1):
        shift = 3.0 if day else 0.0
        _write(store, "m", T0 + day * 86400, {"x": rng.normal(shift, 1, 500), "y": rng.normal(0, 1, 500)})
    loop = EvaluationLoop(
        store,
        parse_models({"*": {"windows": ["1m"]}}, "models"),
        parse_evaluation({"lateness": 0, "backfill": "1h"}, "evaluation"),
    )
    made = loop.run_once(now=T0 + 86400 + SIZE)
    drift = {f.subject: f for f in made if f.kind == "drift"}
    assert drift["x"].status == "breach" and drift["y"].status == "ok"
    assert drift["x"].details["reference"] == "past_window:86400"


def test_cumulative_windows_judge_everything_since_the_first(store):
    rng = np.random.default_rng(3)
    for i in range(4):
        _write(store, "m", T0 + i * SIZE, {"x": rng.normal(size=100)})
    loop = EvaluationLoop(
        store,
        parse_models({"*": {"windows": ["1m"], "mode": "cumulative", "reference": {"past_window": "1d"}}}, "models"),
        parse_evaluation({"lateness": 0}, "evaluation"),
    )
    made = loop.run_once(now=T0 + 4 * SIZE)
    dq = sorted((f.window_start, f.n_current) for f in made if f.kind == "data_quality" and f.subject == "x")
    assert dq == [(T0 + i * SIZE, 100 * (i + 1)) for i in range(4)]


def test_a_dead_export_endpoint_never_blocks_and_pending_points_go_out_later(store):
    rng = np.random.default_rng(4)
    _write(store, "m", T0, {"x": rng.normal(size=100)})
    with OtlpSink() as sink:
        dead = "http://127.0.0.1:9/v1/metrics"  # discard port: nothing listens
        outputs = FindingOutputs(dead, timeout=1.0)
        loop = EvaluationLoop(
            store,
            parse_models({"*": {"windows": ["1m"], "reference": {"past_window": "1d"}}}, "models"),
            parse_evaluation({"lateness": 0}, "evaluation"),
            outputs=outputs,
        )
        made = loop.run_once(now=T0 + SIZE)
        assert made
        assert outputs.flush(10) and outputs.failures == 1 and outputs.pushed == 0
        outputs.export = sink.http_endpoint + "/v1/metrics"
        _write(store, "m", T0 + SIZE, {"x": rng.normal(size=100)})
        loop.run_once(now=T0 + 2 * SIZE)
        assert outputs.flush(10)
        starts = {pt.time_unix_nano // 10**9 - SIZE for _, _, pt in sink.metric_points("ml.data_quality.score")}
        assert starts == {T0 + SIZE}  # the newest value per series: the failed point was superseded
        assert outputs.pushed > 0
        outputs.close()


def test_since_walks_back_over_breaching_windows_or_takes_the_change_point():
    assert locate_since([0, 60, 120], [0.1, 3.0, 3.2], [False, True, True]) == 60
    assert locate_since([0], [5.0], [True]) == 0


def test_query_model_reads_every_series_as_query_does_and_marks_move_with_late_rows(store_url):
    from infersight.processor.evaluate.window import load_window

    st = open_storage(store_url, (SIZE, 3600))
    try:
        rng = np.random.default_rng(6)
        for i in range(3):
            _write(st, "m", T0 + i * SIZE, {"x": rng.normal(size=50), "y": rng.normal(size=30)})
        _write(st, "other", T0, {"x": rng.normal(size=10)})
        st.compact(None)
        got = st.query_model("m", T0, T0 + 3 * SIZE)
        assert sorted(got) == [(FEATURE, "x", "1"), (FEATURE, "y", "1")]
        for (role, name, version), ws in got.items():
            one, _ = st.query("m", role, name, T0, T0 + 3 * SIZE, version)
            assert ws.sketches["value"] == one.sketches["value"]
        marks = st.window_marks("m", T0, T0 + 3 * SIZE)
        assert sorted(marks) == [T0, T0 + SIZE, T0 + 2 * SIZE]
        before = load_window(st, "m", SIZE, T0 + SIZE).fingerprint()
        _write(st, "m", T0 + SIZE, {"x": rng.normal(size=5)})  # a late point
        after = st.window_marks("m", T0, T0 + 3 * SIZE)
        assert after[T0 + SIZE] != marks[T0 + SIZE] and after[T0] == marks[T0]
        late = load_window(st, "m", SIZE, T0 + SIZE).fingerprint()
        assert late != before
        st.compact(None)  # rows rewritten, totals unchanged
        assert load_window(st, "m", SIZE, T0 + SIZE).fingerprint() == late
    finally:
        st.close()


def test_prediction_drift_and_label_shift_from_stored_class_counts(store):
    from infersight.processor.storage import OUTPUT
    from infersight.stats.reference import Reference
    from infersight.stats.windows import WindowStats

    rng = np.random.default_rng(7)
    n = 4000
    y = rng.choice(["no", "yes"], n, p=[0.8, 0.2])
    pred = np.where(rng.random(n) < 0.9, y, np.where(y == "yes", "no", "yes"))
    ref = Reference.from_data(
        {"x": rng.normal(size=n), "pred": pred.astype(object), "y": y.astype(object)},
        model="m",
        prediction="pred",
        target="y",
        multivariate=False,
    )
    for i, share in enumerate((0.26, 0.55)):  # predicted "yes": as in the reference, then a base-rate jump
        b = WriteBatch()
        b.windows[WindowKey("m", "1", FEATURE, "x", SIZE, T0 + i * SIZE)] = FeatureWindow.from_column(
            rng.normal(size=1000), "numeric"
        ).to_stats()
        yes = int(1000 * share)
        b.windows[WindowKey("m", "1", OUTPUT, "pred", SIZE, T0 + i * SIZE)] = WindowStats(
            counters={"class": {"yes": yes, "no": 1000 - yes}}
        )
        store.write(b)
    loop = EvaluationLoop(
        store, parse_models({"*": {"windows": ["1m"]}}, "models"), parse_evaluation({"lateness": 0}, "evaluation")
    )
    loop.references.push("m", ref.to_dict())
    made = loop.run_once(now=T0 + 2 * SIZE)
    out = {(f.window_start - T0, f.subject): f for f in made if f.kind == "drift"}
    assert out[(0, "output:pred")].status == "ok" and out[(0, "label_shift:pred")].status == "ok"
    assert out[(SIZE, "output:pred")].status == "breach"
    shift = out[(SIZE, "label_shift:pred")]
    assert shift.status == "breach" and shift.method == "bbse" and shift.cause == "label_shift"
    assert shift.details["estimated"]["yes"] > 0.5  # BBSE sees through the classifier's errors
    assert out[(SIZE, "x")].status == "ok"


def test_a_long_null_stream_through_the_loop_and_the_alert_engine_raises_no_alert(store):
    """Issue 14: a long stream with no change, sketch path included, raises nothing. 300
    one-minute windows x 24 features (numeric with a few NaNs, integer counts, categories)
    drawn from the reference's distribution go through storage, the evaluators and the alert
    engine with its default (auto) persistence; a real shift in one feature afterwards is
    still caught, as one incident naming it."""
    from infersight.processor.alerts import AlertManager, parse_alerts
    from infersight.stats.reference import Reference

    rng = np.random.default_rng(2024)
    numeric = [f"x{i}" for i in range(16)]
    counts = [f"n{i}" for i in range(4)]
    cats = [f"c{i}" for i in range(4)]
    levels = np.array(["a", "b", "c", "d", "e"], dtype=object)
    shares = [0.4, 0.25, 0.2, 0.1, 0.05]

    def draw(n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
        cols: dict[str, np.ndarray] = {}
        for k, name in enumerate(numeric):
            x = rng.normal(10 + k + (shift if k == 0 else 0.0), 1 + k / 10, n)
            x[rng.random(n) < 0.01] = np.nan
            cols[name] = x
        for name in counts:
            cols[name] = rng.poisson(3, n).astype(float)
        for name in cats:
            cols[name] = rng.choice(levels, n, p=shares)
        return cols

    ref = Reference.from_data(draw(20_000), model="m", multivariate=False)
    kinds = {name: prof.kind for name, prof in ref.features.items()}
    windows = 300
    for w in range(windows + 6):
        b = WriteBatch()
        for name, x in draw(500, shift=0.5 if w >= windows else 0.0).items():
            b.windows[WindowKey("m", "1", FEATURE, name, SIZE, T0 + w * SIZE)] = FeatureWindow.from_column(
                x, kinds[name]
            ).to_stats()
        store.write(b)
    alerts = AlertManager(parse_alerts({}, "alerts"), store, clock=lambda: float(T0))
    loop = EvaluationLoop(
        store,
        parse_models({"*": {"windows": ["1m"]}}, "models"),
        parse_evaluation({"lateness": 0, "backfill": "30d"}, "evaluation"),
        on_findings=alerts.observe,
    )
    loop.references.push("m", ref.to_dict(), now=T0)
    made = loop.run_once(now=T0 + windows * SIZE)
    cells = [f for f in made if f.kind == "drift" and not f.version and f.subject != "__multivariate__"]
    assert len(cells) == windows * 24
    # the reference has no multivariate sample: one ok verdict a window that says so
    joint = [f for f in made if f.subject == "__multivariate__"]
    assert len(joint) == windows and all(f.status == "ok" and "no multivariate" in f.details["reason"] for f in joint)
    # chance breaches happen (each cell is a test at alpha = 0.001, twice) but never persist
    assert sum(f.status == "breach" for f in cells) <= 0.01 * len(cells)
    assert alerts.incidents() == []
    loop.run_once(now=T0 + (windows + 6) * SIZE)
    opened = alerts.incidents("open")
    assert len(opened) == 1 and opened[0]["subjects"] == ["x0"], opened
    alerts.close()


def test_slices_a_long_null_stream_raises_no_alert_and_a_shift_in_one_slice_is_one_incident_naming_it(store):
    """Drift per slice against each slice's own past: 150 one-minute windows of four slices
    (each its own distribution) x 6 features, unchanged, give chance breaches only and no
    incident; a shift in one feature of one slice is then one incident, for that slice."""
    from infersight.processor.alerts import AlertManager, parse_alerts
    from infersight.processor.storage.base import sliced_role

    rng = np.random.default_rng(77)
    slices = {"region=eu": 0.0, "region=us": 3.0, "region=apac": -2.0, "region=(missing)": 8.0}
    windows = 150

    def write(w: int, shift: float) -> None:
        b = WriteBatch()
        for key, mean in slices.items():
            for k in range(6):
                move = shift if (key == "region=apac" and k == 2) else 0.0
                x = rng.normal(mean + k + move, 1.0, 250)
                x[rng.random(250) < 0.02] = np.nan
                b.windows[WindowKey("m", "1", sliced_role(FEATURE, key), f"x{k}", SIZE, T0 + w * SIZE)] = (
                    FeatureWindow.from_column(x, "numeric").to_stats()
                )
        store.write(b)

    for w in range(windows + 4):
        write(w, 1.0 if w >= windows else 0.0)
    alerts = AlertManager(parse_alerts({}, "alerts"), store, clock=lambda: float(T0))
    loop = EvaluationLoop(
        store,
        parse_models({"*": {"windows": ["1m"], "reference": {"past_window": "10m"}}}, "models"),
        parse_evaluation({"lateness": 0, "backfill": "30d"}, "evaluation"),
        on_findings=alerts.observe,
    )
    made = loop.run_once(now=T0 + windows * SIZE)
    cells = [f for f in made if f.kind == "drift" and f.slice]
    # windows with a past window 10 minutes back, four slices, six features
    assert len(cells) == (windows - 10) * 4 * 6
    assert {f.details["reference"] for f in cells} == {"past_window:600"}
    assert sum(f.status == "breach" for f in cells) <= 0.01 * len(cells)
    assert alerts.incidents() == []
    loop.run_once(now=T0 + (windows + 4) * SIZE)
    opened = alerts.incidents("open")
    assert [(i["slice"], i["subjects"]) for i in opened] == [("region=apac", ["x2"])], opened
    alerts.close()


def test_judged_slices_follow_the_names_configured_and_the_cap_keeps_the_busiest():
    from infersight.processor.evaluate.drift import judged_slices
    from infersight.processor.evaluate.settings import ModelSettings
    from infersight.processor.evaluate.window import ModelWindow
    from infersight.processor.storage.base import sliced_role

    def ws(n: int) -> object:
        return FeatureWindow.from_column(np.arange(float(n)), "numeric").to_stats()

    series = {
        (sliced_role(FEATURE, "region=eu"), "x", "1"): ws(30),
        (sliced_role(FEATURE, "region=us"), "x", "1"): ws(50),
        (sliced_role(FEATURE, "region=apac"), "x", "1"): ws(10),
        (sliced_role(FEATURE, "device=ios"), "x", "1"): ws(90),
        (FEATURE, "x", "1"): ws(90),
    }
    w = ModelWindow("m", 60, 0, 60, series)
    assert w.slices == ("device=ios", "region=apac", "region=eu", "region=us")
    assert judged_slices(w, ModelSettings()) == list(w.slices)
    assert judged_slices(w, ModelSettings(slices=("region",))) == ["region=apac", "region=eu", "region=us"]
    assert judged_slices(w, ModelSettings(slices=("region",), slice_cap=2)) == ["region=us", "region=eu"]
    assert w.features("", "region=eu")["x"] is series[(sliced_role(FEATURE, "region=eu"), "x", "1")]
    assert set(w.features()) == {"x"} and w.rows() == 90  # all traffic: the sliced series stay out
