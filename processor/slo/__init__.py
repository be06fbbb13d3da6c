"""Service-level objectives: error budgets and multi-window burn-rate alerts, computed from the
same telemetry that carries the ML signals.

=============  ===============================================================================
module         job
=============  ===============================================================================
``settings``   the ``slo:`` config section (objectives, alert windows, guards)
``burn``       burn rates, alert conditions, error budget, time to exhaustion (pure arithmetic)
``sli``        good/total events of an objective over a range, read from the store
``evaluator``  :class:`SLOEvaluator`: judged at every storage-window close, findings of kind slo
``api``        :func:`slo_routes`: ``GET /api/slo``
``openslo``    OpenSLO v1 documents read as objectives
``rules``      the equivalent Prometheus recording and alerting rules (``infersight slo-rules``)
=============  ===============================================================================

Nothing is imported here, so reading the settings does not load numpy or Starlette.
"""
