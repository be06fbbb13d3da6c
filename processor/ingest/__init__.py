"""Ingest: OTLP in, committed windows out (the first stages of the processor's pipeline).

In the order a request meets them:

===============  ===========================================================================
module           job
===============  ===========================================================================
``receiver``     the OTLP/gRPC and OTLP/HTTP listeners: token, size limits, answers
``decode``       protobuf / JSON → decoded points (``light`` and ``columns``: the fast path)
``points``       the decoded point model every later stage reads
``screen``       receive-time screening: points no window can place are rejected, and told
``writer``       the bounded queue and the single writer thread: one commit per batch
``temporality``  cumulative → delta, per stream, its state committed with the batch
``fold``         delta points → per-window statistics (``WindowStats``) and records
===============  ===========================================================================

Nothing is imported here, so a test that only decodes does not load the servers.
"""
