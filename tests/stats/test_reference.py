"""Reference profiles: built from tables and files, saved as versioned JSON, read back equal."""

from __future__ import annotations

import json

import numpy as np
import pytest

from infersight.cli import main
from infersight.stats.reference import FORMAT_VERSION, Reference
from infersight.stats.schema import Schema


def table(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    pred = rng.choice(np.array(["no", "yes"], dtype=object), n, p=[0.7, 0.3])
    return {
        "age": np.where(rng.random(n) < 0.05, np.nan, rng.normal(40, 10, n)),
        "income": rng.lognormal(10, 1, n),
        "plan": rng.choice(np.array(["free", "pro", "team"], dtype=object), n),
        "active": rng.random(n) < 0.4,
        "label": np.where(rng.random(n) < 0.9, pred, np.where(pred == "yes", "no", "yes")).astype(object),
        "pred": pred,
    }


def test_profile_contents_match_the_data():
    data = table()
    ref = Reference.from_data(data, model="churn", prediction="pred", target="label", trained_at="2024-05-01")
    age = ref.features["age"]
    x = data["age"][~np.isnan(data["age"])]
    assert age.kind == "numeric" and age.missing["nan"] == int(np.isnan(data["age"]).sum())
    assert age.numeric.count == x.size
    assert age.numeric.mean == pytest.approx(x.mean()) and age.numeric.std == pytest.approx(x.std(ddof=1))
    assert age.numeric.quantiles["p50"] == pytest.approx(np.quantile(x, 0.5))
    # CDF knots are exact: cum[i] values are <= edges[i]
    assert np.array_equal(age.numeric.cum, [(x <= e).sum() for e in age.numeric.edges])
    assert age.numeric.sketch.count == x.size
    assert ref.features["plan"].categories == {k: int((data["plan"] == k).sum()) for k in ("free", "pro", "team")}
    assert ref.features["active"].kind == "boolean"
    assert set(ref.features) == {"age", "income", "plan", "active"}
    assert ref.confusion.labels == ["no", "yes"] and ref.confusion.matrix.sum() == 2000
    assert ref.model_age_days > 0
    assert ref.schema.features["plan"].allowed == ["free", "pro", "team"]
    assert ref.multivariate is not None and ref.multivariate["columns"] == ["age", "income"]


def test_save_load_roundtrip(tmp_path):
    ref = Reference.from_data(table(), model="churn", model_version="7", prediction="pred", target="label")
    ref.save(tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["format"] == "infersight.reference" and doc["format_version"] == FORMAT_VERSION
    back = Reference.load(tmp_path / "r.json")
    assert back.to_dict() == ref.to_dict()
    assert Schema.load(tmp_path / "r.json") == ref.schema
    assert back.schema.model_version == "7"


def test_newer_and_corrupt_files_give_clear_errors(tmp_path):
    ref = Reference.from_data(table(200), model="m")
    doc = ref.to_dict()
    doc["format_version"] = FORMAT_VERSION + 1
    (tmp_path / "new.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="newer than this infersight reads.*upgrade"):
        Reference.load(tmp_path / "new.json")
    (tmp_path / "cut.json").write_text(json.dumps(ref.to_dict())[:500])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        Reference.load(tmp_path / "cut.json")
    doc = ref.to_dict()
    doc["features"]["age"]["numeric"]["bins"]["cum"][-1] += 5
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="not a valid reference profile"):
        Reference.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="infersight profile"):
        Reference.load(tmp_path / "missing.json")


def test_list_of_dicts_counts_absent_apart_from_null():
    rows = [{"a": 1.0, "b": "x"}, {"a": None, "b": "y"}, {"b": "x"}, {"a": 4.0, "b": None}]
    ref = Reference.from_data(rows, model="m")
    assert ref.features["a"].missing == {"absent": 1, "null": 1, "nan": 0, "inf": 0}
    assert ref.features["b"].missing["null"] == 1
    assert not ref.schema.features["a"].required and ref.schema.features["b"].required


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "npy", "parquet"])
def test_profile_command_reads_each_format(tmp_path, fmt, capsys):
    pd = pytest.importorskip("pandas")
    data = table(500)
    frame = pd.DataFrame({k: v for k, v in data.items()})
    path = tmp_path / f"train.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif fmt == "parquet":
        pytest.importorskip("pyarrow")
        frame.to_parquet(path)
    else:
        np.save(path, np.column_stack([data["age"], data["income"]]))
    out = tmp_path / "ref.json"
    args = ["profile", str(path), "--model", "churn", "-o", str(out), "--trained-at", "2024-01-01"]
    if fmt != "npy":
        args += ["--prediction", "pred", "--target", "label"]
    assert main(args) == 0
    ref = Reference.load(out)
    if fmt == "npy":
        assert set(ref.features) == {"f0", "f1"}
    else:
        assert ref.features["plan"].kind == "categorical" and ref.features["age"].kind == "numeric"
        assert ref.confusion is not None
        assert ref.features["age"].missing["null"] + ref.features["age"].missing["nan"] == int(
            np.isnan(data["age"]).sum()
        )
    assert "wrote" in capsys.readouterr().out


def test_profile_command_errors_name_the_problem(tmp_path, capsys):
    assert main(["profile", str(tmp_path / "nope.csv"), "--model", "m"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    assert (
        main(["profile", str(tmp_path / "t.csv"), "--model", "m", "--target", "y", "-o", str(tmp_path / "r.json")]) == 2
    )
    assert "target column 'y' is not in the data" in capsys.readouterr().err
