"""`infersight drift` on real files: windows, the exact JSON shape, exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from infersight.cli import main

FEATURE_KEYS = {"method", "statistic", "threshold", "p_value", "drift", "cause", "reason"}


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
    assert (
        main(
            [
                "profile",
                str(tmp_path / "train.csv"),
                "--model",
                "m",
                "-o",
                str(ref),
                "--prediction",
                "pred",
                "--target",
                "label",
            ]
        )
        == 0
    )
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
    code = main(
        [
            "drift",
            str(ref),
            str(live),
            "--time-column",
            "ts",
            "--every",
            "1d",
            "--fail-on-drift",
            "--columns",
            "age",
            "income",
        ]
    )
    out = capsys.readouterr().out
    assert code == 3
    assert "window 2024-05-01T00:00:00Z .. 2024-05-02T00:00:00Z (1440 rows)" in out
    assert "DRIFT" in out and "unit_change:x1000" in out
    assert (
        main(
            [
                "drift",
                str(ref),
                str(live),
                "--chunk-size",
                "2000",
                "--columns",
                "age",
                "--fail-on-drift",
                "--no-multivariate",
            ]
        )
        == 0
    )


def test_bad_input_exits_2_with_a_message(files, capsys):
    ref, live = files
    assert main(["drift", str(ref), str(live), "--every", "1h"]) == 2
    assert "--every needs --time-column" in capsys.readouterr().err
    assert main(["drift", str(ref), str(live), "--time-column", "ts", "--every", "soon"]) == 2
    assert "not a duration" in capsys.readouterr().err
    assert main(["drift", str(ref), str(live), "--columns", "nope"]) == 2
    assert "not in the reference" in capsys.readouterr().err


def _write(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def test_data_sharing_no_feature_is_an_error_even_with_fail_on_drift(files, tmp_path, capsys):
    ref, _ = files
    other = _write(tmp_path / "other.csv", ["user_age", "user_income"], [(40, 5000)] * 50)
    capsys.readouterr()
    assert main(["drift", str(ref), str(other), "--fail-on-drift"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"infersight drift: data file {str(other)!r} has none of the features of reference {str(ref)!r}: "
        "expected age, income, plan; found user_age, user_income. Check that the data and the reference "
        "belong to the same model, or rebuild the reference with `infersight profile`\n"
    )


def test_a_reference_feature_missing_from_the_data_is_reported_and_gated(files, tmp_path, capsys):
    ref, live = files
    pd = pytest.importorskip("pandas")
    no_plan = tmp_path / "no_plan.csv"
    pd.read_csv(live).drop(columns=["plan"]).iloc[:1000].to_csv(no_plan, index=False)
    capsys.readouterr()
    assert main(["drift", str(ref), str(no_plan), "--no-multivariate"]) == 0
    out = capsys.readouterr().out
    assert "window 0 .. 1000 (1000 rows): 1 of 3 features drifted" in out
    assert "  plan                     presence" in out and "MISSING  (the column is not in the data)" in out
    assert "missing from the data: plan" in out
    assert main(["drift", str(ref), str(no_plan), "--no-multivariate", "--fail-on-drift", "--format", "json"]) == 3
    report = json.loads(capsys.readouterr().out)
    plan = report["windows"][0]["features"]["plan"]
    assert plan == {
        "method": "presence",
        "statistic": None,
        "threshold": None,
        "p_value": None,
        "drift": True,
        "cause": "feature_missing",
        "reason": "the column is not in the data",
    }
    assert report["summary"]["missing_features"] == ["plan"] and report["summary"]["features"] == {"plan": 1}


def test_header_only_data_and_chunk_sizes_below_one(files, tmp_path, capsys):
    ref, live = files
    header = _write(tmp_path / "header.csv", ["age", "income", "plan"], [])
    capsys.readouterr()
    assert main(["drift", str(ref), str(header)]) == 2
    assert capsys.readouterr().err == (
        f"infersight drift: data file {str(header)!r} has no rows (a header only?); there is nothing to compare with the reference\n"
    )
    for size in ("0", "-5"):
        with pytest.raises(SystemExit) as exc:
            main(["drift", str(ref), str(live), "--chunk-size", size])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith("usage: infersight drift")
        assert f"argument --chunk-size: {size!r} is not a positive whole number of rows; pass N >= 1" in err


def test_a_malformed_csv_names_the_file(files, tmp_path, capsys):
    ref, _ = files
    bad = tmp_path / "bad.csv"
    bad.write_text('age,income,plan\n1,2,free\n3,"4\n')
    assert main(["drift", str(ref), str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"infersight drift: {str(bad)!r} is not a well-formed CSV file: ")


def test_the_table_says_what_decided_each_verdict(files, tmp_path, capsys):
    ref, _ = files
    rng = np.random.default_rng(5)
    # 60 rows shifted by 0.4 sd: a big effect that 60 rows cannot make significant at 0.001;
    # 5000 rows shifted by 0.03 sd: significant for a loose alpha, but under the effect floor.
    small = _write(tmp_path / "small.csv", ["age"], [(round(v, 3),) for v in rng.normal(44, 10, 60)])
    big = _write(tmp_path / "big.csv", ["age"], [(round(v, 3),) for v in rng.normal(40.3, 10, 5000)])
    capsys.readouterr()
    assert main(["drift", str(ref), str(small), "--columns", "age", "--no-multivariate"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("  age "))
    stat, threshold, p = (float(x) for x in row.split()[2:5])
    assert stat > threshold and p >= 0.001
    assert row.endswith(f"ok       (p {p:.2g} >= alpha 0.001)")
    assert (
        main(
            ["drift", str(ref), str(big), "--columns", "age", "--no-multivariate", "--alpha", "0.5", "--format", "json"]
        )
        == 0
    )
    age = json.loads(capsys.readouterr().out)["windows"][0]["features"]["age"]
    assert age["p_value"] < 0.5 and age["statistic"] < 0.1
    assert age["reason"] == f"effect {age['statistic']:.3g} < min 0.1"


def test_a_long_run_ends_with_a_summary(files, tmp_path, capsys):
    ref, _ = files
    rng = np.random.default_rng(7)
    n = 8000  # 200 windows of 40 rows; income in thousands from row 6000 on
    income = rng.lognormal(10, 1, n) * np.where(np.arange(n) >= 6000, 1000, 1)
    data = _write(
        tmp_path / "long.csv", ["age", "income"], zip(np.round(rng.normal(40, 10, n), 3), np.round(income, 2))
    )
    args = ["drift", str(ref), str(data), "--chunk-size", "40", "--no-multivariate", "--columns", "age", "income"]
    capsys.readouterr()
    assert main(args) == 0
    table = capsys.readouterr().out
    assert table.count("window ") == 200 + 1  # 200 headers and the summary's "first in window"
    assert main(args + ["--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    windows, summary = report["windows"], report["summary"]
    drifted = [w for w in windows if any(f["drift"] for f in w["features"].values())]
    assert all(w["features"]["income"]["drift"] for w in windows[150:])  # the x1000 part, every window
    by_feature = {k: sum(w["features"][k]["drift"] for w in windows) for k in ("age", "income")}
    assert summary == {
        "windows": 200,
        "windows_with_drift": len(drifted),
        "windows_not_judged": 0,
        "first_drift": {"start": drifted[0]["start"], "end": drifted[0]["end"]},
        "features": {k: v for k, v in sorted(by_feature.items(), key=lambda kv: -kv[1]) if v},
        "missing_features": [],
    }
    assert table.rstrip("\n").splitlines()[-2:] == [
        f"summary: drift in {len(drifted)} of 200 windows; first in window {drifted[0]['start']} .. {drifted[0]['end']}",
        "  drifted (windows): " + ", ".join(f"{k} ({v})" for k, v in summary["features"].items()),
    ]


def test_windows_too_small_to_judge_are_counted_in_the_summary(files, capsys):
    ref, live = files
    capsys.readouterr()
    assert main(["drift", str(ref), str(live), "--chunk-size", "20", "--no-multivariate", "--fail-on-drift"]) == 0
    out = capsys.readouterr().out
    assert "(not judged: 20 rows < min 30)" in out
    assert out.rstrip("\n").splitlines()[-2:] == [
        "summary: no drift in 200 windows",
        "  not judged: 200 of 200 windows had too few rows; use a larger --chunk-size or --every",
    ]
