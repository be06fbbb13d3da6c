"""Reading tables and writing profiles: the fast paths give what the plain ones gave."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from infersight.stats.io import read_table, write_json


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(a, b, equal_nan=True))
    return a.tolist() == b.tolist()


@pytest.mark.parametrize("threads", [None, 2, 3, 16])
def test_parquet_columns_read_on_threads_equal_the_one_thread_read(tmp_path: Path, threads: int | None) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(5)
    n = 60_000  # above the row count from which the default reads on threads
    floats = rng.normal(size=n)
    floats[::97] = np.nan
    table = pa.table(
        {
            "f": floats,
            "f32": rng.normal(size=n).astype(np.float32),
            "i": rng.integers(-5, 5, n),
            "u8": rng.integers(0, 200, n).astype(np.uint8),
            "i_null": pa.array([None if k % 11 == 0 else k for k in range(n)], pa.int64()),
            "s": pa.array([None if k % 13 == 0 else "abc"[k % 3] for k in range(n)]),
            "b": rng.random(n) < 0.3,
            "t": pa.array(np.datetime64("2024-01-01T00:00:00") + np.arange(n).astype("timedelta64[s]")),
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=25_000)  # several chunks per column
    want, n_want = read_table(path, threads=1)
    got, n_got = read_table(path, threads=threads)
    assert n_got == n_want == n
    assert list(got) == list(want) == table.column_names
    for name in want:
        assert _same(got[name], want[name]), name


def test_parquet_read_through_parquet_file_equals_the_reader_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Columns are read through pyarrow's ParquetReader from its own module; where that module
    # is not there, through pyarrow.parquet.ParquetFile by name: the same arrays either way,
    # duplicate names (the first column of the name) and nested columns included.
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from infersight.stats import io as stats_io

    n = 3000
    rng = np.random.default_rng(8)
    with_nulls = pa.array([None if k % 7 == 0 else float(k) for k in range(n)])
    table = pa.Table.from_arrays(
        [
            pa.array(rng.normal(size=n)),
            pa.array(rng.integers(0, 9, n)),
            pa.array(["ab"[k % 2] for k in range(n)]),
            with_nulls,
            pa.array([{"a": k, "b": str(k)} for k in range(n)]),
            pa.array(rng.normal(size=n)),
        ],
        names=["x", "i", "s", "x_null", "nested", "x"],
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=1000)
    loaders, rows = stats_io.parquet_columns(path)
    want = {name: load() for name, load in loaders.items()}
    monkeypatch.setattr(stats_io, "_arrow_reader", lambda: stats_io._file_columns)
    loaders, rows_again = stats_io.parquet_columns(path)
    got = {name: load() for name, load in loaders.items()}
    assert rows == rows_again == n
    assert list(got) == list(want) == ["x", "i", "s", "x_null", "nested"]
    for name in want:
        assert _same(got[name], want[name]), name
    assert np.array_equal(want["x"], table.column(0).to_numpy())


@pytest.mark.parametrize("refusal", [OSError("no mmap on this file system"), TypeError("unexpected keyword")])
def test_a_reader_that_cannot_map_the_file_reads_it_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: Exception
) -> None:
    # A file system without mmap (some FUSE mounts), or a pyarrow whose ParquetReader.open
    # takes other arguments: the columns come through ParquetFile instead, the same arrays.
    import sys
    import types

    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from infersight.stats.io import parquet_columns

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": np.arange(50.0), "s": ["a", "b"] * 25}), path)
    want = {k: load() for k, load in parquet_columns(path)[0].items()}
    tried: list[object] = []

    class Refusing:
        def open(self, *args: object, **kwargs: object) -> None:
            tried.append(kwargs.get("use_memory_map"))
            raise refusal

    monkeypatch.setitem(sys.modules, "pyarrow._parquet", types.SimpleNamespace(ParquetReader=Refusing))
    loaders, n = parquet_columns(path)
    got = {k: load() for k, load in loaders.items()}
    assert n == 50 and list(got) == ["x", "s"]
    assert all(_same(got[k], want[k]) for k in want)
    assert tried == [True]  # the mapped open was tried once, then ParquetFile read every column


def test_parquet_threads_below_one_are_refused(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"a": [1.0, 2.0]}), tmp_path / "a.parquet")
    with pytest.raises(ValueError, match="at least 1 thread"):
        read_table(tmp_path / "a.parquet", threads=0)


def test_write_json_writes_compact_json_and_refuses_nan_without_leaving_a_file(tmp_path: Path) -> None:
    doc = {"format": "x", "values": [0.1, 1e300, -0.0, 3], "nested": {"a": [True, None, "é"]}}
    path = tmp_path / "doc.json"
    write_json(path, doc)
    assert path.read_text(encoding="utf-8") == json.dumps(doc, allow_nan=False, separators=(",", ":"))
    with pytest.raises(ValueError):
        write_json(tmp_path / "bad.json", {"v": float("nan")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.json"]


@pytest.mark.parametrize(("threads", "overwrite"), [(1, False), (2, False), (1, True), (2, True)])
def test_profiling_parquet_column_by_column_equals_profiling_the_read_table(
    tmp_path: Path, threads: int, overwrite: bool
) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from infersight.stats.io import parquet_columns
    from infersight.stats.reference import Reference

    rng = np.random.default_rng(9)
    n = 3000
    x = rng.normal(size=n)
    x[::37] = np.nan
    x[5] = np.inf
    table = pa.table(
        {
            "x": x,
            "price": np.round(rng.lognormal(3, 1, n), 2),
            "count": rng.poisson(2, n),
            "zip": rng.integers(10_000, 10_050, n),
            "plan": pa.array([None if k % 17 == 0 else "abc"[k % 3] for k in range(n)]),
            "flag": rng.random(n) < 0.2,
            "note": pa.array([f"free text number {k} " * 5 for k in range(n)]),
            "ts": pa.array(np.datetime64("2024-01-01T00:00:00") + np.arange(n).astype("timedelta64[s]")),
            "pred": rng.integers(0, 3, n),
            "label": rng.integers(0, 3, n),
        }
    )
    path = tmp_path / "train.parquet"
    pq.write_table(table, path, row_group_size=1000)
    options = {
        "model": "m",
        "model_version": "2",
        "prediction": "pred",
        "target": "label",
        "trained_at": "2024-05-01",
        "kinds": {"zip": "categorical"},
        "threads": threads,
    }
    cols, rows = read_table(path)
    want = Reference.from_data((cols, rows), **options).to_dict()
    loaders, n_rows = parquet_columns(path)
    got = Reference.from_columns(loaders, n_rows, overwrite=overwrite, **options).to_dict()
    assert n_rows == rows == n
    for doc in (want, got):
        doc.pop("created_at")
    assert json.dumps(got) == json.dumps(want)  # same keys in the same order, same numbers
    assert got["multivariate"]["columns"] == ["x", "price", "count"]

    picked = {"columns": ["plan", "count", "x"], "threads": threads}
    want = Reference.from_data((cols, rows), **picked).to_dict()
    got = Reference.from_columns(parquet_columns(path)[0], n, overwrite=overwrite, **picked).to_dict()
    for doc in (want, got):
        doc.pop("created_at")
    assert json.dumps(got) == json.dumps(want)


def test_handed_over_columns_are_sorted_in_place_and_others_are_left_alone() -> None:
    from infersight.stats.reference import FeatureProfile, Reference

    rng = np.random.default_rng(4)
    n = 5000
    x = rng.normal(size=n)
    x[::41] = np.nan
    x[7], x[8] = np.inf, -np.inf
    counts = rng.poisson(3, n)
    made: dict[str, list[np.ndarray]] = {"x": [], "counts": [], "y": []}

    def loader(name: str, values: np.ndarray) -> object:
        def load() -> np.ndarray:
            made[name].append(values.copy())
            return made[name][-1]

        return load

    loaders = {"x": loader("x", x), "counts": loader("counts", counts), "y": loader("y", rng.lognormal(size=n))}
    kept = Reference.from_columns(loaders, n, model="m").to_dict()
    assert all(np.array_equal(made[k][0], v, equal_nan=True) for k, v in (("x", x), ("counts", counts)))
    handed = Reference.from_columns(loaders, n, model="m", overwrite=True).to_dict()
    for doc in (kept, handed):
        doc.pop("created_at")
    assert json.dumps(handed) == json.dumps(kept)  # the multivariate rows were taken before the sort
    assert np.array_equal(made["x"][1], np.sort(x), equal_nan=True)  # the float column itself sorted
    assert np.array_equal(made["counts"][1], counts)  # an int column: its float copy was sorted instead

    # A read-only array is never written, even when handed over; nor is a caller's int column.
    frozen = x.copy()
    frozen.flags.writeable = False
    from_frozen = FeatureProfile.from_column("x", frozen, overwrite=True).to_dict()
    assert json.dumps(from_frozen) == json.dumps(FeatureProfile.from_column("x", x).to_dict())
    assert np.array_equal(frozen, x, equal_nan=True)
    ints = counts.copy()
    FeatureProfile.from_column("c", ints)
    assert np.array_equal(ints, counts)


def test_column_by_column_profiling_names_what_is_missing(tmp_path: Path) -> None:
    from infersight.stats.reference import Reference

    loaders = {"a": lambda: np.arange(3.0)}
    with pytest.raises(KeyError, match="target column 'y' is not in the data"):
        Reference.from_columns(loaders, 3, target="y")
    with pytest.raises(KeyError, match=r"column\(s\) \['b'\] are not in the data"):
        Reference.from_columns(loaders, 3, columns=["b"])


@pytest.mark.parametrize("compression", ["none", "snappy"])
def test_sorting_read_columns_in_place_never_writes_the_mapped_file(tmp_path: Path, compression: str) -> None:
    # Columns are read through a memory map of the file: whatever Arrow hands over from it is
    # read-only, so the sort in place of `infersight profile` copies it first and the file
    # keeps its bytes; the profile is the one of the table read whole.
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from infersight.stats.io import parquet_columns
    from infersight.stats.reference import Reference

    rng = np.random.default_rng(12)
    n = 4000
    fields = [pa.field("x", pa.float64(), nullable=False), pa.field("y", pa.float64()), pa.field("k", pa.int64())]
    table = pa.table([rng.normal(size=n), rng.lognormal(size=n), rng.integers(0, 5, n)], schema=pa.schema(fields))
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, compression=compression, use_dictionary=False)
    before = path.read_bytes()
    loaders, rows = parquet_columns(path)
    got = Reference.from_columns(loaders, rows, model="m", overwrite=True).to_dict()
    want = Reference.from_data(read_table(path), model="m").to_dict()
    for doc in (got, want):
        doc.pop("created_at")
    assert json.dumps(got) == json.dumps(want)
    assert path.read_bytes() == before
    assert np.array_equal(parquet_columns(path)[0]["x"](), table.column("x").to_numpy())
