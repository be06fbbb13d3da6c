"""The statistics core, shared by the SDK's request path and the processor.

One room per concept:

- :mod:`~infersight.stats.sketch`: the OTel exponential-histogram sketch (mergeable, exact).
- :mod:`~infersight.stats.columns`: the one feature model: what a column's kind is, what
  counts as missing (and of which kind), how raw values become clean columns.
- :mod:`~infersight.stats.schema`: feature validation (ranges, sets, formats, relations).
- :mod:`~infersight.stats.reference`: reference profiles built from training data (JSON).
- :mod:`~infersight.stats.windows`: per-window summaries that merge into larger windows.
- :mod:`~infersight.stats.drift`: drift methods and the policy that combines them;
  :mod:`~infersight.stats.multivariate` for tests over several columns at once.
- :mod:`~infersight.stats.changepoint`: since when: the window where a change began, on a
  series of per-window values.
- :mod:`~infersight.stats.io`: reading tables (CSV, Parquet, JSON lines, .npy) into columns.

The request path imports only the sketch and the feature model; importing this package
imports nothing else (drift needs scipy, from the ``stats`` extra).

Example:
    >>> from infersight.stats.sketch import ExpHistogram
    >>> ExpHistogram.from_values([1.0, 2.0, 4.0]).count
    3
"""
