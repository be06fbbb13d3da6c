"""The evaluation loop: every closed window of every model, evaluated once, re-opened by late
points, its verdicts stored with their history.

On each tick (:meth:`EvaluationLoop.run_once`, every ``evaluation.interval``), for each model
with stored windows and each of its evaluation window sizes, every window that has closed
(``end + lateness <= now``) and has not been evaluated is handed to the evaluators (drift, data
quality and multivariate drift on sampled payloads built in; the model-quality evaluator and
others are appended to :attr:`EvaluationLoop.evaluators`). A failing evaluator is logged and counted
(``infersight_processor_evaluator_errors_total``) and the others still run.

What each evaluation saw is recorded per window (a record of kind ``"evaluation"``): a cheap
mark of the stored rows (:meth:`Storage.window_marks`) and a fingerprint of what they add up
to. A late point changes the mark; the window is read again and, when its fingerprint changed,
re-evaluated: its findings get ``revision + 1`` and replace the current verdicts, while the
superseded verdicts are kept under kind ``"finding_history"`` (one record per finding, key
``<finding key>|r<revision>``). History is never rewritten without a record. Windows older
than ``evaluation.reopen`` are not re-opened.

The current verdicts of a window's pass are one record per window (kind ``"findings"``, key
``<model>|<size>|<start>``, body :func:`~.findings.pack_findings`: the fields the window's
findings share once, the rest as a table): a pass stores a hundred windows, not twenty thousand
rows. (Stores written before hold ``{"findings": [<finding>, ...]}``; both are read.) The label-driven verdicts (model quality), which arrive one
at a time as labels do, stay one record per finding (kind ``"finding"``, key
:attr:`Finding.key`). :func:`stored_findings` reads both as one list of finding bodies.

Every window's findings (new or re-opened) go to :attr:`EvaluationLoop.on_findings`, where
the alert engine plugs in (default: a log line per breach), and to the metric outputs.

Example:
    >>> from infersight.processor.storage import open_storage
    >>> loop = EvaluationLoop(open_storage("sqlite:///:memory:", (60,)))
    >>> loop.run_once(now=3600.0)
    []
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from infersight.processor.evaluate.data_quality import DataQualityEvaluator
from infersight.processor.evaluate.drift import DriftEvaluator, reference_of
from infersight.processor.evaluate.evidence import pick
from infersight.processor.evaluate.findings import (
    EvaluationContext,
    Evaluator,
    Finding,
    pack_findings,
    packed_columns,
    severity_of,
    unpack_findings,
)
from infersight.processor.evaluate.multivariate import MultivariateEvaluator
from infersight.processor.evaluate.outputs import FindingOutputs
from infersight.processor.evaluate.ownership import Ownership
from infersight.processor.evaluate.references import Env
from infersight.processor.evaluate.settings import EvaluationSettings, ModelSettings, ModelsSettings
from infersight.processor.evaluate.window import ModelWindow, load_window
from infersight.processor.selfmetrics import Registry
from infersight.processor.storage.base import FEATURE, Record, Storage

__all__ = [
    "EvaluationLoop",
    "FINDING",
    "FINDINGS",
    "HISTORY",
    "STATE",
    "locate_since",
    "stored_findings",
    "finding_key",
]

log = logging.getLogger("infersight.processor.evaluate")

FINDING, HISTORY, STATE = "finding", "finding_history", "evaluation"
# per evaluated window: the window pass's current findings in one record
FINDINGS = "findings"
# per window: how many labelled calls the label-driven evaluators last saw
LABELS = "evaluation_labels"
_SINCE_LOOKBACK = 48  # windows of history the change point is looked for in
# the fields of a stored finding the change-point history reads
_HISTORY_FIELDS = (
    "window_size",
    "version",
    "slice",
    "kind",
    "subject",
    "status",
    "statistic",
    "threshold",
    "window_start",
)


def _changepoint() -> Callable[..., Any] | None:
    """``infersight.stats.changepoint.locate`` when this install has it."""
    try:
        mod = importlib.import_module("infersight.stats.changepoint")
    except ImportError:
        return None
    fn = getattr(mod, "locate", None)
    return fn if callable(fn) else None


def locate_since(starts: Sequence[int], severities: Sequence[float], breaching: Sequence[bool]) -> int:
    """Start of the window where the change that ends in the last window began.

    ``starts`` are consecutive window starts (oldest first, the current window last), with each
    window's severity (statistic / threshold) and whether it was a breach. The change point is
    located on the severity series when ``infersight.stats.changepoint`` is installed; without
    it (or when it finds none) the walk goes back over consecutive breaching windows.

    >>> locate_since([0, 60, 120, 180], [0.2, 0.3, 2.0, 2.5], [False, False, True, True])
    120
    """
    locate = _changepoint()
    if locate is not None and len(severities) >= 4:
        try:
            i = locate([float(x) if math.isfinite(x) else 0.0 for x in severities], min_size=2)
        except (ValueError, TypeError):
            i = None
        if i is not None and 0 <= int(i) < len(starts):
            return int(starts[int(i)])
    i = len(starts) - 1
    while i > 0 and breaching[i - 1]:
        i -= 1
    return int(starts[i])


def _log_findings(findings: list[Finding]) -> None:
    for f in findings:
        if f.status in ("breach", "no_data"):
            log.warning(
                "%s %s of %s v%r %s (window %ss at %s, since %s, revision %s): statistic %.4g threshold %.4g cause %s",
                f.kind,
                f.status,
                f.model,
                f.version or "*",
                f.subject,
                f.window_size,
                f.window_start,
                f.since,
                f.revision,
                f.statistic,
                f.threshold,
                f.cause,
            )


class EvaluationLoop:
    """Evaluates closed windows; a thread when :meth:`start` ed, or :meth:`run_once` with an
    explicit clock (tests, replays). See the module docstring."""

    def __init__(
        self,
        storage: Storage,
        models: ModelsSettings | None = None,
        evaluation: EvaluationSettings | None = None,
        *,
        evaluators: Sequence[Evaluator] | None = None,
        on_findings: Callable[[list[Finding]], object] | None = None,
        registry: Registry | None = None,
        outputs: FindingOutputs | None = None,
        slo: Any = None,
        ownership: Ownership | None = None,
    ) -> None:
        self.storage = storage
        # the SLO evaluator (infersight.processor.slo.evaluator.SLOEvaluator): judged per model
        # at every storage-window close, after the model's windows
        self.slo = slo
        self.settings = evaluation or EvaluationSettings()
        self.env = Env(storage, models or ModelsSettings(), self.settings)
        self.evaluators: list[Evaluator] = (
            list(evaluators)
            if evaluators is not None
            else [DriftEvaluator(self.env), DataQualityEvaluator(self.env), MultivariateEvaluator(self.env)]
        )
        self.on_findings: Callable[[list[Finding]], object] = on_findings or _log_findings
        self.registry = registry or Registry()
        self.outputs = outputs or FindingOutputs(self.settings.export, timeout=self.settings.export_timeout)
        # replicas on one store: evaluate only the models this replica holds the lease of
        # (None: every model, one process alone)
        self.ownership = ownership
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one pass at a time (the thread and a test's run_once)

    @property
    def references(self) -> Any:
        return self.env.references

    # -- life -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None or not self.settings.enabled:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="infersight-evaluate", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None
        self.outputs.close()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.interval):
            try:
                self.run_once()
            except Exception:
                log.exception("evaluation pass failed; will retry")
                self.registry.inc("infersight_processor_evaluation_errors_total")

    # -- one pass -------------------------------------------------------------------------

    def run_once(self, now: float | None = None) -> list[Finding]:
        """Evaluate every window closed by ``now`` (Unix seconds; default the clock) that is
        new or changed since its last evaluation; return the findings made."""
        now = time.time() if now is None else float(now)
        with self._lock, _collector_deferred():
            t0 = time.perf_counter()
            try:
                self.env.references.refresh()
            except Exception:
                log.exception("cannot read pushed references; using what is cached")
            made: list[Finding] = []
            models = [m for m in self.storage.models() if m.get("first") is not None]
            mine = self._claim([str(m["model"]) for m in models])
            for m in models:
                if str(m["model"]) not in mine:
                    continue  # another replica's
                try:
                    made.extend(self._owned(m, now))
                except Exception:
                    log.exception("evaluating model %r failed; will retry next pass", m["model"])
                    self.registry.inc("infersight_processor_evaluation_errors_total", model=str(m["model"]))
            self.outputs.update(made)
            self.outputs.push()
            self.registry.inc("infersight_processor_evaluation_passes_total")
            self.registry.inc("infersight_processor_evaluation_seconds_total", time.perf_counter() - t0)
            return made

    # -- ownership (replicas on one store) ------------------------------------------------------

    def _claim(self, names: list[str]) -> set[str]:
        """The models this pass evaluates: all of them alone, the ones whose lease this replica
        holds when it has an :class:`~infersight.processor.evaluate.ownership.Ownership`."""
        if self.ownership is None:
            return set(names)
        try:
            return set(self.ownership.claim(names))
        except Exception:
            log.exception("cannot claim model leases; evaluating nothing this pass")
            self.registry.inc("infersight_processor_evaluation_errors_total")
            return set()

    def _owned(self, m: dict[str, Any], now: float) -> list[Finding]:
        """One model's whole evaluation (every window size, late labels, and whatever else is
        judged per model) under its lease: its writes commit only while the lease holds."""
        if self.ownership is None:
            return self._model(m, now)
        made: list[Finding] = []
        with self.ownership.hold(str(m["model"])) as held:
            if held:
                made = self._model(m, now)
        return made

    def _model(self, m: dict[str, Any], now: float) -> list[Finding]:
        name, first, last = str(m["model"]), int(m["first"]), int(m["last"])
        base = self.storage.window_sizes[0]
        ev = self.settings
        lateness = ev.lateness_for(base)
        ms = self.env.settings(name)
        made: list[Finding] = []
        for size in ms.window_sizes(base):
            newest = math.floor((now - lateness - size) / size) * size
            origin = first - first % size
            oldest = max(origin, math.ceil((now - ev.backfill) / size) * size)
            newest = min(newest, int(math.floor((last + ev.no_data_for) / size) * size))
            if newest < oldest:
                continue
            cumulative = ms.mode_for(size) == "cumulative"
            states = {
                int(r.time): r
                for r in self.storage.get_records(
                    STATE, model=name, key_prefix=f"{name}|{size}|", start=oldest - size, end=newest + 1
                )
            }
            marks = self.storage.window_marks(name, origin if cumulative else oldest, newest + size)
            for s in range(oldest, newest + 1, size):
                data_start = origin if cumulative else None
                lo = origin if cumulative else s
                token = _token({k: v for k, v in marks.items() if lo <= k < s + size})
                st = states.get(s)
                if st is not None:
                    if st.body.get("marks") == token or now - (s + size) > ev.reopen:
                        continue
                elif token == _token({}) and not (first <= s and s >= last):
                    continue  # before the model's first data, or a gap it will fill: nothing to judge
                found = self._window(name, ms, size, s, data_start, st, states, token, now)
                made.extend(found)
            if self._label_driven():
                made.extend(
                    self._labels_pass(name, ms, size, max(origin, oldest - self._label_horizon(size)), newest, now)
                )
        if self.slo is not None:
            made.extend(self._slo(m, now, lateness))
        return made

    def _slo(self, m: dict[str, Any], now: float, lateness: float) -> list[Finding]:
        def alert(found: list[Finding]) -> None:
            try:
                self.on_findings(found)
            except Exception:
                log.exception("on_findings failed for the SLOs of %r", m["model"])
                self.registry.inc("infersight_processor_evaluator_errors_total", evaluator="on_findings")

        try:
            return list(self.slo.run(self.storage, m, now, lateness, on_findings=alert))
        except Exception:
            log.exception("SLO evaluation of %r failed; will retry next pass", m["model"])
            self.registry.inc("infersight_processor_evaluator_errors_total", evaluator="slo")
            return []

    # -- late labels ------------------------------------------------------------------------

    def _label_driven(self) -> list[Evaluator]:
        """Evaluators whose verdicts depend on labels (``uses_labels``): model quality."""
        return [e for e in self.evaluators if getattr(e, "uses_labels", False)]

    def _label_horizon(self, size: int) -> int:
        """How far back a late label can still change a verdict: the store keeps unlabelled
        calls for the feedback TTL, so a label arriving later has nothing to join."""
        ttl = float(getattr(self.storage, "feedback_ttl", 7 * 86400))
        return int(math.ceil(ttl / size)) * size

    def _labels_pass(
        self, model: str, ms: ModelSettings, size: int, oldest: int, newest: int, now: float
    ) -> list[Finding]:
        """Re-run the label-driven evaluators on every closed window whose count of labelled
        calls changed since they last ran: labels arrive minutes to days after the calls, long
        after the window's other verdicts were reached. The earlier verdicts go to history."""
        if newest < oldest:
            return []
        counts = self.storage.label_counts(model, size, oldest, newest + size)
        if not counts:
            return []
        seen = {
            int(r.time): r
            for r in self.storage.get_records(
                LABELS, model=model, key_prefix=f"{model}|{size}|", start=oldest, end=newest + 1
            )
        }
        made: list[Finding] = []
        waits = [float(e.label_wait(model)) for e in self._label_driven() if hasattr(e, "label_wait")]
        wait = max(waits, default=0.0)
        # from the first labelled window on: a window with no label yet is judged too (its
        # coverage), again when a label arrives, and once more when the label wait is over
        for s in range(min(counts), newest + 1, size):
            n = counts.get(s, 0)
            waited = now >= s + size + wait
            prev = seen.get(s)
            if prev is not None and prev.body.get("labels") == n and (prev.body.get("waited") or not waited):
                continue
            revision = int(prev.body.get("revision", -1)) + 1 if prev is not None else 0
            ctx = EvaluationContext(self.storage, model, size, s, now, settings=ms)
            found: list[Finding] = []
            for e in self._label_driven():
                try:
                    found.extend(e.evaluate(ctx))
                except Exception:
                    log.exception("evaluator %r failed on %s window %ss at %s", getattr(e, "name", e), model, size, s)
                    self.registry.inc(
                        "infersight_processor_evaluator_errors_total", evaluator=str(getattr(e, "name", "?"))
                    )
            found = [replace(f, revision=revision, evaluated_at=now) for f in found]
            kinds = {f.kind for f in found}
            records: list[Record] = []
            for r in self.storage.get_records(FINDING, model=model, start=s, end=s + 1):
                if r.body.get("window_size") == size and r.body.get("kind") in kinds:
                    records.append(Record(HISTORY, f"{r.key}|r{r.body.get('revision', 0)}", model, s, r.body))
            records.extend(Record(FINDING, f.key, model, s, f.to_dict()) for f in found)
            records.append(
                Record(LABELS, f"{model}|{size}|{s}", model, s, {"labels": n, "revision": revision, "waited": waited})
            )
            self.storage.put_records(records)
            if found:
                try:
                    self.on_findings(found)
                except Exception:
                    log.exception("on_findings failed for %s window %ss at %s", model, size, s)
                    self.registry.inc("infersight_processor_evaluator_errors_total", evaluator="on_findings")
            made.extend(found)
        return made

    def _window(
        self,
        model: str,
        ms: ModelSettings,
        size: int,
        start: int,
        data_start: int | None,
        state: Record | None,
        states: dict[int, Record],
        token: str,
        now: float,
    ) -> list[Finding]:
        ctx = EvaluationContext(self.storage, model, size, start, now, settings=ms)
        window = load_window(self.storage, model, size, start, data_start)
        ctx.cache.update(window=window, data_start=data_start)
        ctx.versions = window.versions
        fingerprint = window.fingerprint()
        key = f"{model}|{size}|{start}"
        if state is not None and state.body.get("fingerprint") == fingerprint:
            # the rows were rewritten (compaction), not added to: the verdict stands
            self.storage.put_records([Record(STATE, key, model, start, {**state.body, "marks": token})])
            return []
        ctx.cache["previous_present"] = self._previous_present(model, size, start, states)
        findings: list[Finding] = []
        for e in self.evaluators:
            if getattr(e, "uses_labels", False):
                continue  # judged as labels arrive (_labels_pass)
            try:
                findings.extend(e.evaluate(ctx))
            except Exception:
                log.exception("evaluator %r failed on %s window %ss at %s", getattr(e, "name", e), model, size, start)
                self.registry.inc("infersight_processor_evaluator_errors_total", evaluator=str(getattr(e, "name", "?")))
        revision = int(state.body.get("revision", 0)) + 1 if state is not None else 0
        findings = self._complete(ctx, window, findings, revision, now)
        self._store(model, size, start, findings, window, fingerprint, token, revision, now)
        self.registry.inc("infersight_processor_windows_evaluated_total", reopened=str(state is not None).lower())
        if findings:
            try:
                self.on_findings(findings)
            except Exception:
                log.exception("on_findings failed for %s window %ss at %s", model, size, start)
                self.registry.inc("infersight_processor_evaluator_errors_total", evaluator="on_findings")
        return findings

    def _previous_present(self, model: str, size: int, start: int, states: dict[int, Record]) -> set[str] | None:
        prev = states.get(start - size)
        if prev is not None and "present" in prev.body:
            return set(prev.body["present"])
        w = ModelWindow(
            model, size, start - size, start, self.storage.query_model(model, start - size, start, (FEATURE,))
        )
        return w.present() if w.series else None

    def _complete(
        self, ctx: EvaluationContext, window: ModelWindow, findings: list[Finding], revision: int, now: float
    ) -> list[Finding]:
        """Revision, evaluation time, since when (change point) and evidence for breaches."""
        breaches = [f for f in findings if f.status in ("breach", "no_data")]
        history = self._history(ctx.model, ctx.size, ctx.start) if breaches else {}
        rows: list[dict[str, Any]] | None = None
        ref = None
        out = []
        for f in findings:
            if f.status not in ("breach", "no_data"):
                # most findings: only the revision and evaluation time to set (often set already)
                out.append(
                    f
                    if f.revision == revision and f.evaluated_at == now
                    else replace(f, revision=revision, evaluated_at=now)
                )
                continue
            changes: dict[str, Any] = {"revision": revision, "evaluated_at": now}
            if f.status in ("breach", "no_data"):
                past = history.get((f.version, f.slice, f.kind, f.subject), {})
                starts = [ctx.start - k * ctx.size for k in range(_SINCE_LOOKBACK, 0, -1)]
                starts = [s for s in starts if s in past] + [ctx.start]
                # only the unbroken run of evaluated windows counts
                run = [ctx.start]
                for s in reversed(starts[:-1]):
                    if s != run[0] - ctx.size:
                        break
                    run.insert(0, s)
                sev = [past[s][0] for s in run[:-1]] + [f.severity if f.status == "breach" else 1.0]
                breach = [past[s][1] for s in run[:-1]] + [True]
                changes["since"] = locate_since(run, sev, breach)
                if f.kind in ("drift", "data_quality") and not f.evidence and self.settings.evidence:
                    if rows is None:
                        rows = self.storage.joined(
                            ctx.model, ctx.start * 10**9, (ctx.start + ctx.size) * 10**9, limit=500
                        )
                        with contextlib.suppress(Exception):
                            ref = reference_of(ctx, self.env).reference
                    feature = f.subject.split(":", 1)[1] if ":" in f.subject else f.subject
                    if f.subject.startswith(("output:", "label_shift:")) or f.subject.startswith("__"):
                        feature_name = None
                    else:
                        feature_name = feature
                    prof = ref.features.get(feature) if ref is not None and feature_name else None
                    median = prof.numeric.mean if prof is not None and prof.numeric is not None else None
                    known = set(prof.categories) if prof is not None and prof.categories is not None else None
                    changes["evidence"] = pick(
                        rows, feature_name, f.cause, median=median, known=known, n=self.settings.evidence
                    )
            out.append(replace(f, **changes))
        return out

    def _history(
        self, model: str, size: int, start: int
    ) -> dict[tuple[str, str, str, str], dict[int, tuple[float, bool]]]:
        out: dict[tuple[str, str, str, str], dict[int, tuple[float, bool]]] = {}
        # what Finding.from_dict(b) would say, without building it (a pass reads ~10^4): the
        # packed window records give just the fields wanted; other records their bodies
        lo, hi = start - _SINCE_LOOKBACK * size, start
        bodies: list[dict[str, Any]] = [
            r.body for r in self.storage.get_records(FINDING, model=model, start=lo, end=hi)
        ]
        for r in self.storage.get_records(FINDINGS, model=model, start=lo, end=hi):
            got = packed_columns(r.body, _HISTORY_FIELDS)
            if got is None:
                bodies.extend(unpack_findings(r.body))
                continue
            for ws, ver, sl, kind, subject, status, stat, thr, wstart in got:
                if ws == size:
                    sev = 1.0 if status == "no_data" else severity_of(stat, thr)
                    out.setdefault((ver, sl, kind, subject), {})[wstart] = (sev, status in ("breach", "no_data"))
        for b in bodies:
            if b.get("window_size") != size:
                continue
            status = b["status"]
            sev = 1.0 if status == "no_data" else severity_of(b.get("statistic"), b.get("threshold"))
            out.setdefault((b["version"], b.get("slice", ""), b["kind"], b["subject"]), {})[b["window_start"]] = (
                sev,
                status in ("breach", "no_data"),
            )
        return out

    def _store(
        self,
        model: str,
        size: int,
        start: int,
        findings: list[Finding],
        window: ModelWindow,
        fingerprint: str,
        token: str,
        revision: int,
        now: float,
    ) -> None:
        key = f"{model}|{size}|{start}"
        records: list[Record] = []
        gone: list[str] = []
        if revision:
            for r in self.storage.get_records(FINDINGS, key=key):
                for b in unpack_findings(r.body):
                    records.append(Record(HISTORY, f"{finding_key(b)}|r{b.get('revision', 0)}", model, start, b))
            # one record per finding, as stores kept them before: replaced the same way
            new_keys, kinds = {f.key for f in findings}, {f.kind for f in findings}
            for r in self.storage.get_records(FINDING, model=model, start=start, end=start + 1):
                if r.body.get("window_size") != size or not (r.key in new_keys or r.body.get("kind") in kinds):
                    continue
                records.append(Record(HISTORY, f"{r.key}|r{r.body.get('revision', 0)}", model, start, r.body))
                gone.append(r.key)
        records.append(Record(FINDINGS, key, model, start, pack_findings(findings)))
        records.append(
            Record(
                STATE,
                key,
                model,
                start,
                {
                    "fingerprint": fingerprint,
                    "marks": token,
                    "revision": revision,
                    "evaluated_at": now,
                    "present": sorted(window.present()),
                    "findings": len(findings),
                },
            )
        )
        if gone:
            self.storage.delete_records(FINDING, keys=gone)
        self.storage.put_records(records)


@contextlib.contextmanager
def _collector_deferred() -> Iterator[None]:
    """Python's cyclic garbage collector held off for one evaluation pass, its young
    generations collected at the end.

    A pass makes ~10^5 objects that live until it ends (findings, their details, metric
    points), so the collector, triggered by allocations, promoted them and ran two or three
    full collections per pass, each walking every object of the process (the fitted references
    of every model: ~0.1 s each at 100 models x 100 features, a fifth of the pass). A pass
    makes no reference cycles worth collecting before it ends; what it leaves is collected by
    the young collection here and, when old enough, by the next full one (one per pass at
    most, outside it). The collector's setting is restored as it was (others that turned it
    off keep it off); the pause is process-wide for the length of the pass.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
            gc.collect(1)


def _token(marks: dict[int, str]) -> str:
    h = hashlib.sha1()
    for k in sorted(marks):
        h.update(f"{k}={marks[k]};".encode())
    return h.hexdigest()[:16]


def finding_key(body: dict[str, Any]) -> str:
    """:attr:`Finding.key` of a stored finding body, without building the finding.

    >>> finding_key({"model": "m", "version": "", "window_size": 60, "window_start": 0, "kind": "drift",
    ...     "subject": "x"})
    'm|||60|0|drift|x'
    """
    return "|".join(
        (
            body["model"],
            body["version"],
            body.get("slice", ""),
            str(body["window_size"]),
            str(body["window_start"]),
            body["kind"],
            body["subject"],
        )
    )


def stored_findings(
    storage: Storage,
    model: str,
    start: float | None = None,
    end: float | None = None,
    *,
    newest_first: bool = False,
    limit: int | None = None,
) -> list[Record]:
    """The current verdicts on ``model``'s windows starting in ``[start, end)``, one record per
    finding (kind ``"finding"``, key :attr:`Finding.key`), ordered by window start, then key
    (``newest_first``: the other way; ``limit``: the first so many):
    the per-window records (kind ``"findings"``) unpacked, with the per-finding ones (the
    label-driven verdicts, and stores written before findings were kept per window).

    >>> from infersight.processor.storage import open_storage
    >>> stored_findings(open_storage("sqlite:///:memory:", (60,)), "m")
    []
    """
    q: dict[str, Any] = {"model": model, "start": start, "end": end, "newest_first": newest_first, "limit": limit}
    out = list(storage.get_records(FINDING, **q))
    for r in storage.get_records(FINDINGS, **q):  # each holds one or more: ``limit`` of them is enough
        out.extend(Record(FINDING, finding_key(b), model, r.time, b) for b in unpack_findings(r.body))
    out.sort(key=lambda r: (r.time, r.key), reverse=newest_first)
    return out if limit is None else out[:limit]
