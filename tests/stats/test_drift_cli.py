"""`infersight drift` on real files: windows, the exact JSON shape, exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from infersight.cli import main

FEATURE_KEYS = {"method", "statistic", "threshold", "p_value", "drift", "cause"}


@pytest.fixture
def files(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    n = 6000
    y = rng.choice(["no", "yes"], n, p=[0.7, 0.3])
    train = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.lognormal(10, 1, n),
            "plan": rng.choice(["free", "pro", "team"], n),
            "pred": np.where(rng.random(n) < 0.9, y, np.where(y == "yes", "no", "yes")),
            "label": y,
        }
    )
    train.to_csv(tmp_path / "train.csv", index=False)
    m = 4000
    live = pd.DataFrame(
        {
            "ts": pd.date_range("2024-05-01", periods=m, freq="min").strftime("%Y-%m-%dT%H:%M:%SZ"),
            "age": rng.normal(40, 10, m),
            "income": np.concatenate([rng.lognormal(10, 1, 2000), rng.lognormal(10, 1, 2000) * 1000]),
            "plan": rng.choice(["free", "pro", "team"], m),
            "pred": rng.choice(["no", "yes"], m, p=[0.7, 0.3]),
        }
    )
    live.to_csv(tmp_path / "live.csv", index=False)
    ref = tmp_path / "ref.json"
    assert main(["profile", str(tmp_path / "train.csv"), "--model", "m", "-o", str(ref), "--prediction", "pred", "--target", "label"]) == 0
    return ref, tmp_path / "live.csv"


def test_json_report_by_row_chunks(files, capsys):
    ref, live = files
    capsys.readouterr()
    assert main(["drift", str(ref), str(live), "--chunk-size", "2000", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(w["start"], w["end"], w["rows"]) for w in report["windows"]] == [(0, 2000, 2000), (2000, 4000, 2000)]
    for w in report["windows"]:
        assert set(w["features"]) == {"age", "income", "plan"}
        assert all(set(f) == FEATURE_KEYS for f in w["features"].values())
        assert isinstance(w["multivariate"], dict) and "drift" in w["multivariate"]
    first, second = report["windows"]
    assert not any(f["drift"] for f in first["features"].values())
    assert second["features"]["income"]["drift"] and second["features"]["income"]["cause"] == "unit_change:x1000"
    assert second["prediction"]["method"] == "chi2+cohen_w" and "label_shift" in second


def test_time_windows_table_and_fail_on_drift(files, capsys):
    ref, live = files
    capsys.readouterr()
    code = main(["drift", str(ref), str(live), "--time-column", "ts", "--every", "1d", "--fail-on-drift", "--columns", "age", "income"])
    out = capsys.readouterr().out
    assert code == 3
    assert "window 2024-05-01T00:00:00Z .. 2024-05-02T00:00:00Z (1440 rows)" in out
    assert "DRIFT" in out and "unit_change:x1000" in out
    assert main(["drift", str(ref), str(live), "--chunk-size", "2000", "--columns", "age", "--fail-on-drift", "--no-multivariate"]) == 0


def test_bad_input_exits_2_with_a_message(files, capsys):
    ref, live = files
    assert main(["drift", str(ref), str(live), "--every", "1h"]) == 2
    assert "--every needs --time-column" in capsys.readouterr().err
    assert main(["drift", str(ref), str(live), "--time-column", "ts", "--every", "soon"]) == 2
    assert "not a duration" in capsys.readouterr().err
    assert main(["drift", str(ref), str(live), "--columns", "nope"]) == 2
    assert "not in the reference" in capsys.readouterr().err
