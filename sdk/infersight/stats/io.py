"""Reading tables from files (CSV, Parquet, JSON lines, .npy) and versioned JSON documents.

Tables come back in the shape of ``infersight.stats.columns.to_columns``. Large files show a progress
line on stderr when it is a terminal. JSON documents (reference profiles, schemas) carry
``format`` and ``format_version``; reading a newer, foreign or corrupt one fails with a message
that says which file, what was found and what to do.

Example:
    >>> # cols, n = read_table("train.csv"); doc = read_versioned_json("reference.json", {...})
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import json
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from infersight._extras import needs_extra
from infersight.stats.columns import parse_text_cells, to_columns

__all__ = ["read_table", "parquet_columns", "read_versioned_json", "write_json", "Progress", "TABLE_SUFFIXES"]

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json", ".npy")
_CHUNK_ROWS = 200_000
_THREADED_ROWS = 50_000  # from this many rows a Parquet file's columns are read on a thread per CPU
_READ_BUFFER = 1 << 20  # bytes a Parquet reader reads at a time


class Progress:
    """A one-line progress indicator on stderr, shown only on a terminal (no dependency)."""

    def __init__(self, label: str, total: int, enabled: bool | None = None) -> None:
        self.label, self.total = label, max(total, 1)
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    def update(self, done: int) -> None:
        if self.enabled:
            pct = min(100.0, 100.0 * done / self.total)
            sys.stderr.write(f"\r{self.label}: {pct:5.1f}%")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def read_table(
    path: str | Path,
    *,
    columns: Sequence[str] | None = None,
    progress: bool | None = None,
    threads: int | None = None,
) -> tuple[dict[str, npt.NDArray[Any]], int]:
    """Read a data file into ``(columns, n_rows)``; the format comes from the suffix.

    ``threads``: Parquet columns decoded that many at a time (default: one per CPU from
    50,000 rows); the other formats are read on one thread.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data file {str(p)!r} does not exist; check the path")
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv"):
        cols, n = _read_csv(p, "\t" if suffix == ".tsv" else ",", progress)
    elif suffix in (".parquet", ".pq"):
        cols, n = _read_parquet(p, threads)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        cols, n = _read_jsonl(p, progress)
    elif suffix == ".npy":
        arr = np.load(p, allow_pickle=False)
        cols, n = to_columns(arr)
    else:
        raise ValueError(f"cannot read {str(p)!r}: unknown suffix {suffix!r}; use one of {', '.join(TABLE_SUFFIXES)}")
    if columns:
        missing = [c for c in columns if c not in cols]
        if missing:
            raise KeyError(f"column(s) {missing} not in {str(p)!r}; it has {sorted(cols)[:20]}")
        cols = {c: cols[c] for c in columns}
    return cols, n


def _read_csv(p: Path, sep: str, progress: bool | None) -> tuple[dict[str, npt.NDArray[Any]], int]:
    # The parsers' own messages ("Error tokenizing data. C error: EOF inside string starting at
    # row 2") say what broke but not in which file; a pipeline reads several.
    try:
        return _parse_csv(p, sep, progress)
    except (csv.Error, UnicodeDecodeError, ValueError) as exc:
        what = (
            "is empty (not even a header line)"
            if type(exc).__name__ == "EmptyDataError"
            else f"is not a well-formed CSV file: {exc}"
        )
        raise ValueError(f"{str(p)!r} {what}; fix the file or pass another one") from exc


def _parse_csv(p: Path, sep: str, progress: bool | None) -> tuple[dict[str, npt.NDArray[Any]], int]:
    size = p.stat().st_size
    bar = Progress(f"reading {p.name}", size, progress if progress is not None else (None if size > 50e6 else False))
    try:  # pandas parses CSV fastest when it is there; it is not a dependency
        pd: Any = importlib.import_module("pandas")
    except ImportError:
        pd = None
    with open(p, "rb") as fh:
        if pd is not None:
            frames = []
            for chunk in pd.read_csv(fh, sep=sep, chunksize=_CHUNK_ROWS, low_memory=False):
                frames.append(chunk)
                bar.update(fh.tell())
            bar.close()
            frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
            return to_columns(frame)
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        reader = csv.reader(text, delimiter=sep)
        header = next(reader, [])
        rows: list[list[str]] = []
        for i, row in enumerate(reader):
            rows.append(row)
            if i % 100_000 == 0:
                bar.update(fh.tell())
        bar.close()
    cols = {}
    for j, name in enumerate(header):
        vals = np.empty(len(rows), dtype=object)
        vals[:] = [(r[j] if j < len(r) and r[j] != "" else None) for r in rows]
        cols[name] = parse_text_cells(vals)  # typed as pandas would read it
    return cols, len(rows)


def _read_parquet(p: Path, threads: int | None) -> tuple[dict[str, npt.NDArray[Any]], int]:
    loaders, n = parquet_columns(p)
    workers = _workers(threads, n, len(loaders))
    if workers <= 1:
        return {name: load() for name, load in loaders.items()}, n
    # Arrow decodes without the GIL. 1M x 20 floats on 2 cores: 0.12 s → 0.07 s.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="infersight-read") as pool:
        arrays = list(pool.map(lambda load: load(), loaders.values()))
    return dict(zip(loaders, arrays)), n


def parquet_columns(path: str | Path) -> tuple[dict[str, Callable[[], npt.NDArray[Any]]], int]:
    """A Parquet file's columns as loaders, and its row count: each loader reads and decodes its
    column when called (on any thread), as :func:`read_table` would have returned it. Every
    call reads afresh: the array it returns is the caller's alone, to keep or overwrite.

    For a caller that profiles each column as it loads and then lets it go
    (:meth:`~infersight.stats.reference.Reference.from_columns`), so the whole table is never
    in memory: on the 1M x 20 float bench file the peak RSS of ``infersight profile`` halves and
    the kernel zeroes a few columns' worth of fresh pages instead of 160 MB.

    >>> # loaders, n = parquet_columns("train.parquet"); x = loaders["x"]()
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data file {str(p)!r} does not exist; check the path")
    with needs_extra("parquet", f"reading {str(p)!r}"):
        open_columns = _arrow_reader()
    # One column at a time: each is decoded straight into the array it becomes (one chunk per
    # row group, so usually no copy) and the whole Arrow table never exists beside the arrays.
    # On a 1M x 20 float file read_table took 2-3x as long and peaked 190 MB higher.
    n, names, read = open_columns(p)

    def loader(name: str) -> Callable[[], npt.NDArray[Any]]:
        at = names.index(name)  # the first column of that name, as reading by name gives

        def load() -> npt.NDArray[Any]:
            cols, _ = to_columns({name: _column_array(read(at))})
            return cols[name]

        return load

    return {name: loader(name) for name in names}, n


# A Parquet file opened for reading whole columns by position: its row count, its column
# names, and a function reading the column at a position (from any thread) as a ChunkedArray.
_OpenColumns = Callable[[Path], tuple[int, list[str], Callable[[int], Any]]]


def _arrow_reader() -> _OpenColumns:
    """How Parquet columns are read: :func:`_mapped_columns` through pyarrow's ``ParquetReader``
    (what ``pyarrow.parquet.ParquetFile`` wraps, and ``pyarrow.parquet`` exports), taken from
    its own module: ``import pyarrow.parquet`` also loads pyarrow's file systems (S3, GCS,
    Azure, HDFS bindings), 10 ms of CPU, 3% of an ``infersight profile`` run on the 1M x 20
    bench file. Where that module is not there, :func:`_file_columns` (``ParquetFile``)."""
    try:
        from pyarrow._parquet import ParquetReader  # noqa: F401
    except ImportError:
        import pyarrow.parquet  # noqa: F401  (no pyarrow at all: the caller names the extra)

        return _file_columns
    return _mapped_columns


def _mapped_columns(p: Path) -> tuple[int, list[str], Callable[[int], Any]]:
    """Each column read through a memory map of the file, opened for that column alone (the
    footer parsed once): the kernel's page cache is read in place instead of copied into
    read buffers, 15-20 ms less CPU for the 1M x 20 bench file's 20 columns, and as the map
    closes with its column, the peak RSS holds one column's pages at a time (91 MB for
    reading and sorting the bench file's columns one by one, against 117 MB buffered). A
    map of the whole file open through the read would count all of it in the RSS. Where the
    file cannot be mapped, or ``ParquetReader.open`` takes other arguments, the buffered
    :func:`_file_columns`."""
    from pyarrow._parquet import ParquetReader

    def opened(metadata: Any = None) -> Any:
        r = ParquetReader()
        try:
            r.open(str(p), use_memory_map=True, metadata=metadata)
        except (TypeError, AttributeError):  # another pyarrow's signature: the public class
            return None
        return r

    try:
        first = opened()
    except OSError:  # a file system that cannot map files (some FUSE mounts): buffered reads
        return _file_columns(p)
    if first is None:
        return _file_columns(p)
    meta, names = first.metadata, list(first.schema_arrow.names)
    first.close()

    def read(at: int) -> Any:
        r = opened(meta)
        try:
            return r.read_column(at)
        finally:
            r.close()

    return int(meta.num_rows), names, read


def _file_columns(p: Path) -> tuple[int, list[str], Callable[[int], Any]]:
    """Columns read through ``pyarrow.parquet.ParquetFile``, by name, with a buffered reader
    per thread (one is one file handle, not documented as safe to share between threads)."""
    import pyarrow.parquet as pq

    local = threading.local()

    def file() -> Any:
        pf = getattr(local, "pf", None)
        if pf is None:
            pf = local.pf = pq.ParquetFile(p, buffer_size=_READ_BUFFER)
        return pf

    first = file()
    names = list(first.schema_arrow.names)

    def read(at: int) -> Any:
        return file().read(columns=[names[at]], use_threads=False).column(0)

    return int(first.metadata.num_rows), names, read


def _workers(threads: int | None, rows: int, n_columns: int) -> int:
    if threads is not None and threads < 1:
        raise ValueError(f"threads={threads!r}: read with at least 1 thread, or None for one per CPU")
    default = (os.cpu_count() or 1) if rows >= _THREADED_ROWS else 1  # small files: not worth a pool
    return min(n_columns, threads if threads is not None else default)


def _column_array(col: Any) -> npt.NDArray[Any]:
    """One Arrow column (a ``ChunkedArray``) as numpy: numbers straight from Arrow's buffers,
    the rest (strings, timestamps, nulls) through Arrow's conversion."""
    plain = _plain_numbers(col)
    if plain is not None:
        return plain
    try:
        arr = col.to_numpy(zero_copy_only=False)
    except Exception:
        arr = np.asarray(col.to_pylist(), dtype=object)
    if arr.dtype.kind == "O":
        arr = np.asarray(col.to_pylist(), dtype=object)
    return arr


# Arrow's fixed-width number types, read as the numpy arrays they already are in memory.
_ARROW_NUMBERS = {
    "double": "<f8",
    "float": "<f4",
    **{f"int{b}": f"<i{b // 8}" for b in (8, 16, 32, 64)},
    **{f"uint{b}": f"<u{b // 8}" for b in (8, 16, 32, 64)},
}


def _plain_numbers(col: Any) -> npt.NDArray[Any] | None:
    """A column of numbers without nulls straight from Arrow's buffers, or ``None``.

    ``to_numpy`` would give the same array but imports pandas on first use (half a second
    of a profile run); the buffers need nothing.
    """
    chunks = col.chunks
    dtype = _ARROW_NUMBERS.get(str(col.type))
    if dtype is None or any(c.null_count for c in chunks):
        return None
    parts = [
        np.frombuffer(c.buffers()[1], dtype=dtype, count=len(c), offset=c.offset * np.dtype(dtype).itemsize)
        for c in chunks
    ]
    if not parts:
        return np.zeros(0, dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _read_jsonl(p: Path, progress: bool | None) -> tuple[dict[str, npt.NDArray[Any]], int]:
    size = p.stat().st_size
    bar = Progress(f"reading {p.name}", size, progress if progress is not None else (None if size > 50e6 else False))
    rows: list[Any] = []
    with open(p, "rb") as fh:
        first = fh.read(1)
        fh.seek(0)
        if first == b"[":  # a plain JSON array of records is accepted too
            rows = json.load(fh)
        else:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise ValueError(
                            f"{str(p)!r} line {lineno} is not JSON ({exc.msg}); fix or drop that line"
                        ) from exc
                if lineno % 100_000 == 0:
                    bar.update(fh.tell())
    bar.close()
    return to_columns(rows)


def read_versioned_json(path: str | Path, accepted: Mapping[str, int | None]) -> dict[str, Any]:
    """Load a JSON document whose ``format`` is a key of ``accepted`` and whose
    ``format_version`` is at most the value (``None``: any version)."""
    p = Path(path)
    what = "/".join(accepted)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{str(p)!r} does not exist; create it with `infersight profile DATA -o {p.name}`"
        ) from None
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{str(p)!r} is not valid JSON ({exc}); the file is corrupt or truncated. "
            "Re-create it with `infersight profile`"
        ) from exc
    if not isinstance(doc, dict) or doc.get("format") not in accepted:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"{str(p)!r} is not an {what} file (format={found!r}); pass a file written by infersight")
    version = doc.get("format_version")
    limit = accepted[doc["format"]]
    if not isinstance(version, int):
        raise ValueError(f"{str(p)!r} has no integer format_version ({version!r}); the file is corrupt")
    if limit is not None and version > limit:
        raise ValueError(
            f"{str(p)!r} has format_version {version}, newer than this infersight reads ({limit}); "
            "upgrade infersight (pip install -U infersight) or re-create the file with this version"
        )
    return doc


def write_json(path: str | Path, doc: Mapping[str, Any]) -> None:
    """Write atomically (temp file + rename), so a crash never leaves half a profile."""
    p = Path(path)
    folder = p.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(
            f"cannot write {str(p)!r}: the folder {str(folder)!r} {what}; create it first or write elsewhere"
        )
    tmp = p.with_name(p.name + ".tmp")
    # dumps, not dump: json.dump streams through the pure-Python encoder, five times slower on
    # a profile's tens of thousands of numbers; the text is a few MB at most.
    text = json.dumps(doc, allow_nan=False, separators=(",", ":"))
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except OSError as exc:  # name the file asked for, not the temp file beside it
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise type(exc)(f"cannot write {str(p)!r}: {exc.strerror}; check the path and its permissions") from exc
