"""The SLO evaluator: every objective of every model, judged at each storage-window close.

Run by the evaluation loop once per model per pass (:meth:`SLOEvaluator.run`): for each
storage window that closed (its end plus the lateness allowance passed) since the model was
last judged, each objective that applies to the model is judged at that window's end
(:func:`~infersight.processor.slo.burn.judge`) for all versions together and, when the period
saw two or more versions and the objective is ``per_version``, for each version. Each judgement
gives four findings of kind ``slo`` (window = the storage window just closed):

* ``<slo>``: the objective's status (``ok``, ``warning`` when the budget is spent or an alert
  was held back by the event guard, ``breach`` when an alert fires, ``no_data``); statistic =
  the share of the period's error budget spent, threshold 1.
* ``<slo>/page`` and ``<slo>/ticket``: ``breach`` while an alert of that severity fires, else
  ``ok``; statistic = the firing (or nearest) alert's long-window burn rate, threshold = its
  factor. The default alert policies (``slo-page``, ``slo-ticket``) open an incident on the
  first breach and resolve it on the first ok: the short window is what makes them reset.
* ``<slo>/no_data`` (all versions only): ``no_data`` when the model had events in the period
  but none for ``no_data`` seconds: a model that stops reporting is a failure, not silence.

The latest status per (model, version, objective) is kept as a record (kind ``slo_status``)
for ``/api/slo``; each judgement is kept as a record too (kind ``slo_history``) and expires with
the evaluation records.

Example:
    >>> from infersight.processor.storage import open_storage
    >>> from infersight.processor.slo.settings import parse_slo
    >>> ev = SLOEvaluator(parse_slo({"objectives": [{"name": "up", "kind": "availability",
    ...     "objective": "99%", "period": "1h"}], "alerts": [{"name": "fast", "severity": "page",
    ...     "long": "10m", "short": "1m", "budget": "10%"}]}, "slo"))
    >>> ev.run(open_storage("sqlite:///:memory:", (60,)), {"model": "m", "first": None}, now=600.0)
    []
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from infersight.processor.evaluate.findings import Finding
from infersight.processor.slo.burn import AlertState, SLOStatus, judge
from infersight.processor.slo.settings import Objective, SLOSettings
from infersight.processor.slo.sli import ModelCounts
from infersight.processor.storage.base import Record

__all__ = ["SLOEvaluator", "STATUS", "HISTORY", "STEP"]

log = logging.getLogger("infersight.processor.slo")

STATUS, HISTORY, STEP = "slo_status", "slo_history", "slo_step"
# At most this many missed storage windows are judged in one pass (a processor that was down
# for a day judges the newest ones; burn rates read whole windows, so nothing is lost).
_MAX_STEPS = 120


class SLOEvaluator:
    """Judges the objectives of :class:`~infersight.processor.slo.settings.SLOSettings`; see
    the module docstring."""

    name = "slo"

    def __init__(self, settings: SLOSettings, *, quality_size: Any = None) -> None:
        self.settings = settings
        # model -> the window size whose quality tallies model-quality objectives read
        self.quality_size = quality_size

    def applies(self, model: str) -> bool:
        return bool(self.settings.for_model(model))

    def run(
        self,
        storage: Any,
        m: Mapping[str, Any],
        now: float,
        lateness: float = 0.0,
        on_findings: Callable[[list[Finding]], object] | None = None,
    ) -> list[Finding]:
        """Judge model ``m`` (a :meth:`Storage.models` entry) at every storage-window end closed
        by ``now - lateness`` and not judged yet; store the statuses; return the findings.

        ``on_findings`` (the alert engine) gets the findings *before* the judgement is recorded
        as done, so a processor that dies in between judges the same step again on restart (or
        on the replica that takes the model over), and the alert engine, which keys its
        verdicts by window, sees it once more instead of never."""
        model = str(m["model"])
        objectives = self.settings.for_model(model)
        if not objectives or m.get("first") is None:
            return []
        base = int(storage.window_sizes[0])
        newest = int(math.floor((now - lateness) / base) * base)
        state = storage.get_records(STEP, key=model)
        done = int(state[0].body["at"]) if state else None
        first_end = int(m["first"]) + base
        start_at = first_end if done is None else done + base
        start_at = max(start_at, newest - (_MAX_STEPS - 1) * base)
        if newest < start_at:
            return []
        last_event = float(m["last"]) if m.get("last") is not None else None
        qsize = self._quality_size(model, base)
        made: list[Finding] = []
        statuses: dict[str, Record] = {}
        records: list[Record] = []
        for at in range(start_at, newest + 1, base):
            if last_event is not None and at - last_event > max(self.settings.horizon(o) for o in objectives):
                continue  # nothing left in any period: judged as silent already
            counts = ModelCounts(storage, model, qsize)
            for o in objectives:
                for st in self._judge(o, counts, at, base, last_event):
                    made.extend(self._findings(model, st, base))
                    body = {"model": model, **st.to_dict()}
                    key = f"{model}|{st.version}|{o.name}"
                    statuses[key] = Record(STATUS, key, model, float(at), body)
                    records.append(Record(HISTORY, f"{key}|{at}", model, float(at), _compact(body)))
        if made and on_findings is not None:
            on_findings(made)
        storage.put_records([*records, *statuses.values(), Record(STEP, model, model, float(newest), {"at": newest})])
        return made

    def _quality_size(self, model: str, base: int) -> int | None:
        q = self.quality_size
        if q is None:
            return None
        size = q(model) if callable(q) else q
        return int(size) if size else None

    def _judge(
        self, o: Objective, counts: ModelCounts, at: int, base: int, last_event: float | None
    ) -> list[SLOStatus]:
        period = self.settings.period_of(o)
        calls = o.kind != "model_quality"

        def reader(version: str) -> Any:
            return lambda start, end: counts.counts(o, version, start, end)

        # the end of the newest window with data, as of ``at`` (a late judgement of an old step
        # must not call the model silent because of data that came after it)
        seen = None if last_event is None else min(last_event, float(at))
        out = [judge(o, self.settings, reader(""), at=at, last_event=seen, check_no_data=calls)]
        if o.per_version:
            versions = counts.versions(at - period, at) if calls else counts.quality_versions(at - period, at)
            if len(versions) > 1:
                for v in versions:
                    st = judge(o, self.settings, reader(v), at=at, last_event=None, check_no_data=False)
                    out.append(_with_version(st, v))
        return out

    def _findings(self, model: str, st: SLOStatus, base: int) -> list[Finding]:
        o = st.objective
        common: dict[str, Any] = {
            "model": model,
            "version": st.version,
            "window_size": base,
            "window_start": int(st.at) - base,
            "kind": "slo",
            "n_current": int(st.period.total),
            "evaluated_at": st.at,
        }
        summary = {
            "slo": o.name,
            "sli_kind": o.kind,
            "objective": o.objective,
            "threshold": o.threshold,
            "sli": st.period.sli,
            "budget_remaining": st.budget_remaining,
            "time_to_exhaustion": st.time_to_exhaustion,
            "period": self.settings.period_of(o),
            "burn_rates": st.to_dict()["burn_rates"],
        }
        spent = 1.0 - st.budget_remaining
        out = [
            Finding(
                subject=o.name,
                status=st.status,
                statistic=spent,
                threshold=1.0,
                method=f"slo:{o.kind}",
                details={**summary, "alerts": [a.to_dict() for a in st.alerts]},
                **common,
            )
        ]
        for severity in ("page", "ticket"):
            mine = [a for a in st.alerts if a.severity == severity]
            lead = _lead(mine)
            if lead is None:
                continue
            out.append(
                Finding(
                    subject=f"{o.name}/{severity}",
                    status="breach" if lead.firing else "ok",
                    statistic=lead.long.burn_rate if lead.long is not None else math.nan,
                    threshold=lead.factor,
                    method=f"burn_rate:{lead.name}",
                    cause=f"slo_burn:{o.kind}" if lead.firing else None,
                    details={
                        **summary,
                        "alert": lead.to_dict(),
                        "firing": [a.name for a in mine if a.firing],
                        "guarded": [a.name for a in mine if a.guarded],
                    },
                    **common,
                )
            )
        if not st.version and o.kind != "model_quality":
            out.append(
                Finding(
                    subject=f"{o.name}/no_data",
                    status="no_data" if st.no_data else "ok",
                    statistic=(st.at - st.last_event) if st.last_event is not None else math.nan,
                    threshold=self.settings.no_data_of(o),
                    method="no_data",
                    cause="no_data" if st.no_data else None,
                    details={**summary, "last_event": st.last_event},
                    **common,
                )
            )
        return out


def _lead(alerts: Sequence[AlertState]) -> AlertState | None:
    """The alert a severity's finding speaks for: the firing one with the highest long-window
    burn relative to its factor, else the nearest to firing."""
    if not alerts:
        return None

    def ratio(a: AlertState) -> float:
        if a.long is None or not a.factor:
            return 0.0
        short = a.short.burn_rate if a.short is not None else a.long.burn_rate
        return min(a.long.burn_rate, short) / a.factor

    firing = [a for a in alerts if a.firing]
    return max(firing or list(alerts), key=ratio)


def _with_version(st: SLOStatus, version: str) -> SLOStatus:
    from dataclasses import replace

    return replace(st, version=version)


def _compact(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the history keeps of a status: enough to plot the SLI, budget and burn rates."""
    return {
        k: body[k]
        for k in ("model", "slo", "version", "at", "status", "sli", "error_budget", "burn_rates")
        if k in body
    } | {"firing": [a["name"] for a in body.get("alerts", ()) if a.get("firing")]}
