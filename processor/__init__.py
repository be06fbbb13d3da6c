"""The infersight processor: OTLP in, windowed mergeable statistics, evaluators, API.

Where things live, by job (data flows down this list, never back up):

- ``ingest/``: OTLP listeners, decoding, screening, cumulative → delta, folding points into
  windows, and the writer that commits them (its ``__init__`` maps the modules).
- ``storage/``: the storage interface (``storage.base.Storage``) and its engines, SQLite and
  PostgreSQL; a new backend is one module there.
- ``api.py``: the web port (health, Prometheus text, the JSON API over stored windows).
- ``service.py`` wires it all together; ``cli.py`` and ``config.py`` are the command line and
  its configuration; ``selfmetrics.py`` the processor's own counters.

The window model itself is the statistics engine's (``infersight.stats.windows.WindowStats``,
read for scoring as its ``FeatureWindow``), so evaluators score stored windows directly.
Evaluators (drift, SLOs, quality) will go in an ``evaluators/`` package, one module per
evaluator, reading from ``storage`` and producing findings; alert channels (OTLP log records,
webhooks) in an ``alerts/`` package, one module per channel behind a small interface, as
storage engines are.
"""
