"""Model quality from late labels: every call's outcome joined with its ground truth.

=============  ===============================================================================
module         job
=============  ===============================================================================
``settings``   the ``quality:`` config section
``metrics``    accuracy, precision, recall, F1, ROC AUC, MAE, RMSE, MAPE in numpy
``join``       outcome rows + labels → aligned pairs (batches row by row) → a range's quality
``evaluator``  :class:`QualityEvaluator`: quality, coverage, age and version findings
``api``        :func:`quality_routes`: ``GET /api/models/{model}/quality``
=============  ===============================================================================

Nothing is imported here, so reading the settings does not load numpy or Starlette.
"""
