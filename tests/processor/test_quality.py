"""Quality from outcomes and labels: the store's join (both engines), batch rows, exclusions,
drops against a baseline, age, versions side by side, and the config section."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from infersight._outcomes import encode_outcomes
from infersight.processor.config import ConfigError
from infersight.processor.evaluate.findings import EvaluationContext
from infersight.processor.ingest.fold import aggregate
from infersight.processor.ingest.points import LogPoint
from infersight.processor.ingest.screen import log_problem
from infersight.processor.quality.evaluator import FIRST_SEEN, QualityEvaluator
from infersight.processor.quality.join import score_rows
from infersight.processor.quality.settings import ModelQuality, parse_quality
from infersight.processor.storage import open_storage
from infersight.processor.storage.base import MODEL, Feedback, Outcome, WindowKey, WriteBatch
from infersight.stats.sketch import ExpHistogram
from infersight.stats.windows import WindowStats

W = 60
T0 = 1_800_000_000 - 1_800_000_000 % W


def _outcome(rid: str, t: float, pred, version: str = "1", rows: int = 1, model: str = "m") -> Outcome:
    return Outcome(model, version, rid, int(t * 1e9), "ab" * 16, "cd" * 8, json.dumps(pred), rows, False)


def _label(rid: str, t: float, actual, version: str = "1", model: str = "m", **attrs) -> Feedback:
    return Feedback(model, version, rid, int(t * 1e9), json.dumps(actual), json.dumps(attrs) if attrs else None)


@pytest.fixture
def store(tmp_path):
    s = open_storage(f"sqlite:///{tmp_path}/q.db", (W, 3600))
    yield s
    s.close()


def test_outcome_records_are_screened_and_folded():
    body = {
        "format": 1,
        "model": "m",
        "version": "2",
        "request_id": ["a", "b"],
        "time_ns": [1, 2],
        "trace_id": ["", ""],
        "span_id": ["", ""],
        "prediction": [0.5, [1, 0]],
        "rows": [1, 2],
        "truncated": [False, False],
    }
    rec = LogPoint("ml.outcomes", {}, {"ml.model.name": "m"}, 2, "", "", json.dumps(body))
    agg = aggregate([], [], [rec], (W,))
    assert [(o.request_id, o.prediction, o.rows) for o in agg.outcomes] == [("a", "0.5", 1), ("b", "[1, 0]", 2)]
    bad = LogPoint("ml.outcomes", {}, {}, 0, "", "", json.dumps({**body, "time_ns": [1]}))
    assert log_problem(bad) == "ml.outcomes log record: columns have different lengths [1, 2]"
    worse = LogPoint("ml.outcomes", {}, {}, 0, "", "", json.dumps({**body, "format": 9}))
    assert "format 9 is not one of (1, 2)" in (log_problem(worse) or "")
    assert "not JSON" in (log_problem(LogPoint("ml.outcomes", {}, {}, 0, "", "", "{nope")) or "")


def test_packed_float_answers_are_stored_as_format_1_stores_them():
    """Format 2 (what the SDK writes for float answers) folds into the same outcomes as the
    same calls written as format 1 lists; packed columns that disagree are refused by name."""
    calls = [
        ("a", 1, "m", "2", 0, np.array([0.5, np.nan, 0.25])),
        ("b", 2, "m", "2", 0, "yes"),
        ("c", 3, "m", "2", 0, (0.75,)),
        ("d", 4, "m", "2", 0, np.array([[0.1], [0.2]], dtype=np.float32)),
    ]
    (packed,) = encode_outcomes(calls, max_bytes=8192, max_rows=2048)
    assert packed["format"] == 2
    plain = {
        **packed,
        "format": 1,
        "prediction": [[0.5, None, 0.25], "yes", [0.75], [0.10000000149011612, 0.20000000298023224]],
    }
    del plain["packed"], plain["values"]
    folded = [
        [(o.request_id, o.prediction, o.rows, o.truncated) for o in aggregate([], [], [rec], (W,)).outcomes]
        for rec in (
            LogPoint("ml.outcomes", {}, {"ml.model.name": "m"}, 4, "", "", json.dumps(b, allow_nan=False))
            for b in (packed, plain)
        )
    ]
    assert folded[0] == folded[1]
    assert folded[0][0] == ("a", "[0.5, null, 0.25]", 3, False)
    assert packed["packed"] == [3, None, None, 2]  # a one-row answer's number is written as JSON
    short = LogPoint("ml.outcomes", {}, {}, 0, "", "", json.dumps({**packed, "packed": [3, None, None, 3]}))
    assert log_problem(short) == "ml.outcomes log record: values holds 40 bytes, packed says 6 numbers of 8 bytes"


def test_the_store_joins_every_outcome_with_its_label_and_expires_them(store_url):
    s = open_storage(store_url, (W,))
    try:
        s.write(
            WriteBatch(
                outcomes=[_outcome("a", T0 + 1, 1), _outcome("b", T0 + 2, 0), _outcome("c", T0 + W + 1, 1)],
                feedback=[_label("a", T0 + 300, 1, region="eu"), _label("zz", T0 + 5, 1)],
            )
        )
        rows = s.outcomes("m", T0 * 10**9, (T0 + W) * 10**9)
        assert [(r["request_id"], r["actual"], r["feedback_attributes"]) for r in rows] == [
            ("a", 1, {"region": "eu"}),
            ("b", None, {}),
        ]
        assert rows[0]["feedback_time_ns"] - rows[0]["time_ns"] == 299 * 10**9
        assert [r["request_id"] for r in s.outcomes("m", 0, 2 * 10**18, labelled_only=True)] == ["a"]
        assert s.outcome_versions("m") == {
            "1": {"first_ns": (T0 + 1) * 10**9, "last_ns": (T0 + W + 1) * 10**9, "calls": 3}
        }
        assert any(m["model"] == "m" for m in s.models())
        gone = s.expire(T0 + W + 50, {}, prediction_retention=W, dedup_ttl=60)
        assert gone["outcomes"] == 2
        assert [r["request_id"] for r in s.outcomes("m", 0, 2 * 10**18)] == ["c"]
        gone = s.expire(T0 + W + 8 * 86400, {}, prediction_retention=10**9, dedup_ttl=60)
        assert gone["unlabelled_outcomes"] == 1  # waited past feedback_ttl (7 d) for a label
        assert s.outcomes("m", 0, 2 * 10**18) == []
    finally:
        s.close()


def _rows(pairs, version="1", rows_per=1):
    out = []
    for i, (pred, actual) in enumerate(pairs):
        out.append(
            {
                "request_id": f"r{i}",
                "version": version,
                "time_ns": T0 * 10**9 + i,
                "trace_id": "",
                "span_id": "",
                "prediction": pred,
                "rows": len(pred) if isinstance(pred, list) and rows_per != 1 else 1,
                "truncated": False,
                "actual": actual,
                "feedback_time_ns": None if actual is None else T0 * 10**9 + i + 10**9,
                "feedback_attributes": {},
            }
        )
    return out


def test_batches_pair_row_by_row_and_what_cannot_pair_is_counted():
    rows = _rows([([1, 0, 1], [1, 1, 1]), ([0, 1], [0, 1]), ([1, 1], [1]), (None, 1), (0, None)], rows_per=2)
    rows[3]["rows"] = 1
    r = score_rows(rows, ModelQuality())
    assert r.labelled == 5 and r.metrics["accuracy"] == accuracy_score([1, 1, 1, 0, 1], [1, 0, 1, 0, 1])
    assert r.excluded == {"unaligned": 2, "missing_prediction": 1}
    assert r.calls == 5 and r.labelled_calls == 4 and r.coverage == 0.8


def test_nan_predictions_are_excluded_and_counted_string_labels_and_scores():
    preds = [{"label": "churn", "score": 0.9}, {"label": "stay", "score": 0.2}, {"label": "churn", "score": 0.6}]
    preds += [{"label": "stay", "score": 0.4}, None]
    actual = ["churn", "stay", "stay", "churn", "churn"]
    r = score_rows(_rows(list(zip(preds, actual))), ModelQuality(positive_label="churn"))
    t, p, s = actual[:4], ["churn", "stay", "churn", "stay"], [0.9, 0.2, 0.6, 0.4]
    assert r.excluded == {"missing_prediction": 1}
    assert r.metrics["f1"] == f1_score(t, p, pos_label="churn")
    assert r.metrics["roc_auc"] == roc_auc_score([a == "churn" for a in t], s)


def test_probability_vectors_and_scores_give_labels_and_auc():
    rng = np.random.default_rng(2)
    proba = rng.dirichlet([1, 1, 1], 200)
    actual = [int(rng.choice(3, p=row)) for row in proba]
    r = score_rows(_rows([([row.tolist()], a) for row, a in zip(proba, actual)]), ModelQuality())
    assert r.task == "classification" and r.metrics["accuracy"] == accuracy_score(actual, proba.argmax(1))
    assert r.metrics["roc_auc"] == pytest.approx(roc_auc_score(actual, proba, multi_class="ovr"), abs=1e-12)
    s = rng.random(100)
    y = (s + rng.normal(0, 0.3, 100) > 0.5).astype(int).tolist()
    r = score_rows(_rows(list(zip(s.tolist(), y))), ModelQuality(threshold=0.5))
    assert r.metrics["accuracy"] == accuracy_score(y, (s >= 0.5).astype(int))
    assert r.metrics["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_a_drop_against_the_baseline_breaches_and_too_few_labels_only_warn(store):
    rng = np.random.default_rng(4)
    outcomes, labels = [], []
    for w in range(4):  # three baseline windows right 95% of the time, then one at 70%
        hit = 0.95 if w < 3 else 0.70
        for i in range(400):
            t = T0 + w * W + i * W / 400
            rid = f"{w}-{i}"
            outcomes.append(_outcome(rid, t, 1))
            labels.append(_label(rid, t + 30, 1 if rng.random() < hit else 0))
    store.write(WriteBatch(outcomes=outcomes, feedback=labels))
    cfg = parse_quality({"baseline_windows": 3, "min_labelled": 100}, "quality")
    found = QualityEvaluator(cfg).evaluate(EvaluationContext(store, "m", W, T0 + 3 * W, T0 + 10 * W))
    acc = next(f for f in found if f.subject == "accuracy")
    assert acc.status == "breach" and acc.details["reasons"] == ["dropped"] and acc.p_value < 1e-6
    assert acc.n_reference == 1200 and acc.evidence  # request IDs to go to
    calm = QualityEvaluator(cfg).evaluate(EvaluationContext(store, "m", W, T0 + 2 * W, T0 + 10 * W))
    assert next(f for f in calm if f.subject == "accuracy").status == "ok"
    few = parse_quality({"baseline_windows": 3, "min_labelled": 1000, "min": {"accuracy": 0.9}}, "quality")
    acc = next(
        f
        for f in QualityEvaluator(few).evaluate(EvaluationContext(store, "m", W, T0 + 3 * W, T0 + 10 * W))
        if f.subject == "accuracy"
    )
    assert acc.status == "warning" and acc.threshold == 0.9


def test_age_is_remembered_after_the_outcomes_are_gone(store):
    store.write(WriteBatch(outcomes=[_outcome("a", T0 + 1, 1, version="3")]))
    ev = QualityEvaluator(parse_quality({"max_age": "1h"}, "quality"))
    age = next(f for f in ev.evaluate(EvaluationContext(store, "m", W, T0, T0 + 600)) if f.kind == "age")
    assert age.statistic == 599 and age.status == "ok"
    assert [r.key for r in store.get_records(FIRST_SEEN)] == ["m|3"]
    store.expire(T0 + 7200, {}, prediction_retention=60, dedup_ttl=60)
    store.write(WriteBatch(outcomes=[_outcome("b", T0 + 7200, 1, version="3")]))
    later = ev.evaluate(EvaluationContext(store, "m", W, T0 + 7200, T0 + 7300))
    age = next(f for f in later if f.kind == "age")
    assert age.statistic == 7299 and age.status == "breach" and age.cause_class == "stale_model"


def _durations(values) -> WindowStats:
    return WindowStats(sketches={"duration": ExpHistogram.from_values(np.asarray(values))})


def test_a_slower_new_version_is_worse_on_latency_and_a_different_one_is_flagged(store):
    rng = np.random.default_rng(9)
    outcomes = [_outcome(f"o{i}", T0 - 3 * W + i, "a", version="1") for i in range(3)]
    for i in range(600):
        v = "2" if i % 3 == 0 else "1"
        outcomes.append(
            _outcome(f"c{i}", T0 + i * W / 600, ("a" if rng.random() < (0.5 if v == "2" else 0.8) else "b"), v)
        )
    store.write(
        WriteBatch(
            windows={
                WindowKey("m", "1", MODEL, "", W, T0): _durations(rng.lognormal(-4, 0.3, 400)),
                WindowKey("m", "2", MODEL, "", W, T0): _durations(rng.lognormal(-3.3, 0.3, 200)),
            },
            outcomes=outcomes,
        )
    )
    found = QualityEvaluator(parse_quality({"min_labelled": 100}, "quality")).evaluate(
        EvaluationContext(store, "m", W, T0, T0 + 2 * W)
    )
    v = {f.subject: f for f in found if f.kind == "version"}
    lat = v["latency"]
    assert lat.version == "2" and lat.status == "breach" and lat.p_value < 1e-6
    assert lat.details["p95"]["2"] > 1.5 * lat.details["p95"]["1"]
    assert v["predictions"].status == "warning" and v["predictions"].method == "chi_square"
    assert v["verdict"].status == "breach" and v["verdict"].details["worse"] == ["latency"]


def test_slices_from_feedback_attributes(store):
    outcomes, labels = [], []
    for i in range(200):
        region = "eu" if i % 2 else "us"
        outcomes.append(_outcome(f"s{i}", T0 + i * 0.1, 1))
        labels.append(_label(f"s{i}", T0 + 100, 1 if region == "eu" or i % 4 == 0 else 0, region=region))
    store.write(WriteBatch(outcomes=outcomes, feedback=labels))
    cfg = parse_quality({"models": {"m": {"slices": ["region"]}}}, "quality")
    found = QualityEvaluator(cfg).evaluate(EvaluationContext(store, "m", W, T0, T0 + 600))
    acc = {f.slice: f.statistic for f in found if f.subject == "accuracy"}
    assert acc == {"": 0.75, "region=eu": 1.0, "region=us": 0.5}


@pytest.mark.parametrize(
    "body, message",
    [
        ({"models": {"m": {"task": "ranking"}}}, "quality.models.m.task: 'ranking' is not one of auto"),
        ({"min": {"acuracy": 0.9}}, "quality.min.acuracy: unknown metric"),
        ({"alpha": 2}, "quality.alpha: 2 is outside [0.0, 1.0]"),
        ({"max_age": "soon"}, "quality.max_age: 'soon' is not a duration"),
        ({"slices": "region"}, "quality.slices: 'region' must be a list"),
        ({"colour": 1}, "quality.colour: unknown key"),
    ],
)
def test_config_errors_name_the_key_value_and_fix(body, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        parse_quality(body, "quality")


def test_config_defaults_and_per_model_overrides():
    s = parse_quality({}, "quality")
    assert s.for_model("x") == ModelQuality()
    s = parse_quality({"min_drop": 0.05, "models": {"m": {"max": {"mae": 3}, "label_wait": "2h"}}}, "quality")
    m = s.for_model("m")
    assert m.min_drop == 0.05 and m.max == {"mae": 3.0} and m.label_wait == 7200.0
    assert math.isnan(float("nan"))


def test_the_drop_tests_are_scipys():
    from scipy.stats import ttest_ind

    from infersight.processor.quality.evaluator import compare_errors, compare_proportions

    rng = np.random.default_rng(8)
    new, old = np.abs(rng.normal(1.2, 1, 300)), np.abs(rng.normal(1.0, 1, 500))
    want = ttest_ind(new, old, equal_var=False, alternative="greater").pvalue
    got = compare_errors(new.size, new.mean(), new.var(ddof=1), old.size, old.mean(), old.var(ddof=1))
    assert got == pytest.approx(want, rel=1e-9)
    # two-proportion z: the normal tail of the pooled statistic
    from scipy.stats import norm

    p = (70 + 90) / 200
    z = (0.9 - 0.7) / math.sqrt(p * (1 - p) * (2 / 100))
    assert compare_proportions(70, 100, 90, 100) == pytest.approx(norm.sf(z), rel=1e-12)


def test_baselines_are_read_from_the_windows_already_evaluated(store):
    rng = np.random.default_rng(12)
    outcomes, labels = [], []
    for w in range(4):
        for i in range(300):
            rid = f"{w}-{i}"
            t = T0 + w * W + i * W / 300
            outcomes.append(_outcome(rid, t, 1))
            labels.append(_label(rid, t + 5, 1 if rng.random() < (0.95 if w < 3 else 0.7) else 0))
    store.write(WriteBatch(outcomes=outcomes, feedback=labels))
    ev = QualityEvaluator(parse_quality({"baseline_windows": 3, "min_labelled": 100}, "quality"))
    for w in range(3):  # the loop evaluates each window as it closes
        ev.evaluate(EvaluationContext(store, "m", W, T0 + w * W, T0 + 10 * W))
    assert len(store.get_records("quality_window", model="m")) == 3
    acc = next(
        f for f in ev.evaluate(EvaluationContext(store, "m", W, T0 + 3 * W, T0 + 10 * W)) if f.subject == "accuracy"
    )
    assert acc.details["baseline"]["windows"] == 3 and acc.n_reference == 900
    assert acc.status == "breach" and acc.details["reasons"] == ["dropped"]


def test_the_api_body_by_slice_version_and_window(store):
    from infersight.processor.quality.api import quality_body

    outcomes, labels = [], []
    for i in range(120):
        version = "2" if i % 3 == 0 else "1"
        outcomes.append(_outcome(f"a{i}", T0 + i * 0.5, 1, version=version))
        if i < 90:  # the labels stop after 45 s
            labels.append(_label(f"a{i}", T0 + 200, 1 if i % 2 else 0, version=version, region="eu" if i % 2 else "us"))
    store.write(WriteBatch(outcomes=outcomes, feedback=labels))
    cfg = parse_quality({}, "quality")
    body = quality_body(store, cfg, "m", T0, T0 + 60, window=20)
    assert body["calls"] == 120 and body["labelled"] == 90 and body["coverage"] == 0.75
    assert [w["coverage"] for w in body["windows"]] == [1.0, 1.0, pytest.approx(0.25)]
    assert set(body["versions"]) == {"1", "2"} and body["versions"]["2"]["calls"] == 40
    eu = quality_body(store, cfg, "m", T0, T0 + 60, slice_="region=eu")
    assert eu["slice"] == "region=eu" and eu["metrics"]["accuracy"] == 1.0 and eu["labelled"] == 45
    v2 = quality_body(store, cfg, "m", T0, T0 + 60, version="2")
    assert v2["calls"] == 40 and set(v2["versions"]) == {"2"}
    assert body["label_delay_seconds"]["max"] == pytest.approx(200.0)


def test_the_loop_judges_quality_again_as_late_labels_arrive_and_keeps_the_earlier_verdict(store):
    """The window's other verdicts are reached when it closes; its labels come minutes to days
    later. Each time the count of labelled calls changes, the loop re-runs quality on that
    window (revision + 1, the earlier verdict in history) and hands the findings on."""
    from infersight.processor.evaluate.loop import EvaluationLoop
    from infersight.processor.evaluate.settings import parse_evaluation, parse_models

    handed: list[list] = []
    loop = EvaluationLoop(
        store,
        parse_models({"*": {"windows": ["1m"]}}, "models"),
        parse_evaluation({"lateness": "10s"}, "evaluation"),
        on_findings=handed.append,
    )
    loop.evaluators.append(QualityEvaluator(parse_quality({"min_labelled": 20, "min": {"accuracy": 0.8}}, "quality")))
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, 200)
    calls = [_outcome(f"c{i}", T0 + i * 0.25, int(truth[i])) for i in range(200)]
    store.write(WriteBatch(windows={WindowKey("m", "1", MODEL, "", W, T0): _durations([0.01] * 200)}, outcomes=calls))

    def accuracy(now: float) -> list:
        made = loop.run_once(now=now)
        return [f for f in made if f.kind == "quality" and f.subject == "accuracy" and f.version == "1"]

    assert accuracy(T0 + W + 11) == []  # closed and judged; no label yet, nothing to score
    # the first 100 labels: all right
    store.write(WriteBatch(feedback=[_label(f"c{i}", T0 + 600, int(truth[i])) for i in range(100)]))
    first = accuracy(T0 + 700)
    assert len(first) == 1 and first[0].statistic == 1.0 and first[0].status == "ok" and first[0].n_current == 100
    assert accuracy(T0 + 710) == []  # nothing new: not judged again
    # a day later the rest arrive, all wrong: accuracy 0.5, under the configured minimum
    store.write(WriteBatch(feedback=[_label(f"c{i}", T0 + 86400, 1 - int(truth[i])) for i in range(100, 200)]))
    second = accuracy(T0 + 86400 + 60)
    assert len(second) == 1 and second[0].statistic == pytest.approx(0.5) and second[0].status == "breach"
    assert second[0].revision == first[0].revision + 1
    assert any(f.subject == "accuracy" and f.status == "breach" for batch in handed for f in batch)
    history = store.get_records("finding_history", model="m")
    assert [r.body["statistic"] for r in history if r.body["subject"] == "accuracy" and r.body["version"] == "1"] == [
        1.0
    ]
