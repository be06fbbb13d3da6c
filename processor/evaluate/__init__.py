"""Evaluation: the verdicts the processor reaches on its stored windows (see findings)."""
