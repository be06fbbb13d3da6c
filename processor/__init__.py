"""The infersight processor: OTLP in, windowed mergeable statistics, evaluators, API."""
