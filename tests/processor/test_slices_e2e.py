"""Drift per slice, end to end on loopback: an app monitored with ``@monitor(slices=["region"])``
exports real OTLP to a started processor; a shift confined to one region (a fifth of the
traffic) is found in that region's slice, named in an alert with the slice, while the other
region stays quiet; a NaN flood in one region's feature is that slice's data-quality finding. Windows are shrunk to 1 s; each slice is compared with
its own past (``reference: {past_window: 5s}``).

Time is real (the SDK stamps metric points at export): each step makes its calls inside one
1-second storage window, flushes, waits for the window to close and runs one evaluation pass.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import numpy as np
import pytest

import infersight
from support.seconds import at_second_start, evaluate_when_closed

CONFIG = """
storage:
  window: 1s
evaluation:
  interval: 1h          # passes are run by the test, one per closed window
  lateness: 0s
models:
  "*":
    windows: [1s]
    reference: {past_window: 5s}
    slices: [region]
alerts:
  policies:
    - {name: inputs, kinds: [drift], persistence: 1}
    - {name: pipeline, kinds: [data_quality], persistence: 1}
"""

MODEL = "e2e-slices"


@pytest.fixture
def processor(start_processor: Any) -> Any:
    return start_processor(config=CONFIG)


def _step(p: Any, predict: Any, rng: np.random.Generator, shift_eu: float) -> int | None:
    """One window of traffic (400 rows, a fifth of them from eu, in batches of 20); returns
    the window's start (``None`` when a slow moment let the calls spill into the next one)."""
    batches = []
    for _ in range(20):
        region = np.where(rng.random(20) < 0.2, "eu", "us")
        x = rng.normal(0, 1, 20) + np.where(region == "eu", shift_eu, 0.0)
        y = rng.normal(0, 1, 20)
        if shift_eu:  # and half of eu's y goes missing: a pipeline fault in that region
            y[(region == "eu") & (rng.random(20) < 0.5)] = np.nan
        batches.append({"region": region.tolist(), "x": x, "y": y})
    at_second_start(0.2)
    start = int(time.time())
    for b in batches:
        predict(b)
    assert infersight.flush()
    clean = int(time.time()) == start
    evaluate_when_closed(p)
    return start if clean else None


def test_a_shift_in_one_region_is_found_in_its_slice_and_alerted_with_it(processor: Any) -> None:
    p = processor
    web = f"http://127.0.0.1:{p.ports['web']}"
    infersight.configure(
        endpoint=f"http://127.0.0.1:{p.ports['otlp_grpc']}",
        protocol="grpc",
        log_output="none",
        metric_export_interval=3600,
        service_name="slices-e2e",
    )

    @infersight.monitor(model=MODEL, version="1", slices=["region"])
    def predict(batch: dict[str, Any]) -> Any:
        return np.asarray(batch["x"]) * 0.1

    rng = np.random.default_rng(7)
    begin = int(time.time())
    normal = [_step(p, predict, rng, 0.0) for _ in range(6)]  # the reference: normal seconds
    shifted = [_step(p, predict, rng, 2.0) for _ in range(3)]  # eu's x moves by 2 sd
    end = int(time.time()) + 1
    # a busy machine can skip a second between steps: judge the shifted windows whose
    # reference (the same slice 5 s earlier) holds normal traffic
    judged = [w for w in shifted if w is not None and w - 5 in normal]
    assert judged, (normal, shifted)

    info = httpx.get(f"{web}/api/models/{MODEL}").json()
    assert info["slices"] == ["region=eu", "region=us"]
    eu_x = httpx.get(
        f"{web}/api/models/{MODEL}/features/x", params={"slice": "region=eu", "start": begin, "end": end}
    ).json()
    all_x = httpx.get(f"{web}/api/models/{MODEL}/features/x", params={"start": begin, "end": end}).json()
    assert eu_x["slice"] == "region=eu" and 0 < eu_x["count"] < all_x["count"] == 9 * 400

    found = httpx.get(
        f"{web}/api/models/{MODEL}/findings", params={"kind": "drift", "start": judged[0], "end": judged[-1] + 1}
    ).json()["findings"]
    verdict = {(f["slice"], f["subject"], f["window_start"]): f for f in found}
    for w in judged:
        eu = verdict[("region=eu", "x", w)]
        assert eu["status"] == "breach" and eu["cause"] == "distribution_shift", eu
        assert eu["details"]["reference"] == "past_window:5"
        assert eu["n_current"] < 200  # the slice's rows, not the model's
        assert verdict[("region=us", "x", w)]["status"] == "ok"
        assert verdict[("region=eu", "y", w)]["status"] == "ok"
        assert verdict[("", "y", w)]["status"] == "ok"
        # the model's totals: a fifth of the rows moved; the slice is where it is plain
        assert verdict[("", "x", w)]["statistic"] < eu["statistic"]
    quality = httpx.get(
        f"{web}/api/models/{MODEL}/findings",
        params={"kind": "data_quality", "start": judged[0], "end": judged[-1] + 1},
    ).json()["findings"]
    dq = {(f["slice"], f["subject"], f["window_start"]): f for f in quality}
    for w in judged:
        assert dq[("region=eu", "y", w)]["status"] == "breach", dq[("region=eu", "y", w)]
        assert dq[("region=eu", "y", w)]["cause"] == "missing_rate_jump"
        assert dq[("region=us", "y", w)]["status"] == "ok"
        assert dq[("region=eu", "x", w)]["status"] == "ok"
    # the eu slice's own output drifted with its input
    assert verdict[("region=eu", "output:prediction", judged[-1])]["status"] == "breach"

    alerts = httpx.get(f"{web}/api/alerts", params={"model": MODEL, "state": "open"}).json()["incidents"]
    eu = {a["policy"]: a for a in alerts if a["slice"] == "region=eu"}
    assert sorted(eu) == ["inputs", "pipeline"], alerts  # one incident per policy and slice
    assert "x" in eu["inputs"]["subjects"] and eu["inputs"]["dedup"]["slice"] == "region=eu"
    assert eu["pipeline"]["subjects"] == ["y"] and eu["pipeline"]["cause"] == "missing_rate_jump"
    assert not [a for a in alerts if a["slice"] == "region=us"]

    report = httpx.get(
        f"{web}/api/models/{MODEL}/drift",
        params={"slice": "region=eu", "start": judged[-1], "end": judged[-1] + 1},
    ).json()
    assert report["slice"] == "region=eu" and report["reference"] == ["past_window:5"]
    ((entry,),) = [report["windows"]]
    assert entry["features"]["x"]["drift"] is True and entry["features"]["y"]["drift"] is True  # y: NaN jump
    assert entry["rows"] == verdict[("region=eu", "x", judged[-1])]["n_current"]  # the slice's rows (x has no NaN)

    metrics = httpx.get(f"{web}/metrics").text
    assert any(
        line.startswith("ml_drift_detected{") and 'ml_slice="region=eu"' in line and 'ml_feature_name="x"' in line
        for line in metrics.splitlines()
    )
