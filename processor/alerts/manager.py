"""The alert engine: findings in, few and readable notifications out.

:class:`AlertManager` reads the findings of each evaluated window and keeps, per
*deduplication key* (by default model, version, slice and policy), the recent verdicts of
each window size. An incident opens when a key breaches for ``persistence`` consecutive
windows, carries the moved subjects ranked by severity x importance, the likely cause class
with what to check first, the runbook and evidence (trace and request IDs), and resolves after
``resolve_after`` consecutive ok windows. One incident is one ``open`` and one ``resolve``
notification, whatever the number of windows or features in between; changes while open
(a new subject, another cause class) send at most one ``update`` per ``update_every`` windows.
After a notified resolve the key stays quiet for ``cooldown`` seconds of window time: a breach
in that time re-opens the same incident silently and is announced only if it outlasts the
cooldown. A per-model budget caps notifications per period; beyond it one
``budget_exhausted`` notice goes out and the rest are counted (and a ``budget_summary`` with
the count when the period ends).

State lives in the storage records table (kinds ``alert`` for incidents, key = incident id;
``alert_track`` for per-key verdicts; ``alert_budget`` per model), so a restart continues
where it stopped. Every notification is recorded too (kind ``alert_sent``, key = its ``id``)
in the same transaction as the state that caused it, *before* it goes to the channels: a
replica that takes a model over (:meth:`AlertManager.reload_model`) finds it sent and never
sends it again (at most once; docs/alerts.md says why).

Example:
    >>> from infersight.processor.storage import open_storage
    >>> from infersight.processor.alerts.settings import parse_alerts
    >>> store = open_storage("sqlite:///:memory:")
    >>> mgr = AlertManager(parse_alerts({}, "alerts"), store, clock=lambda: 1e9)
    >>> def window(i, status):
    ...     return [Finding(model="churn", version="3", window_size=60, window_start=60 * i,
    ...         kind="drift", subject="age", status=status, statistic=0.3, threshold=0.1)]
    >>> [n.event for i, s in enumerate(["breach", "breach", "breach"]) for n in mgr.observe(window(i, s))]
    ['open']
    >>> mgr.close()
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from infersight.processor.alerts.channels import Channel, make_channel
from infersight.processor.alerts.explain import (
    CAUSE_CLASS_LABELS,
    check_first,
    describe_subject,
    pick_cause_class,
    rank,
    short,
)
from infersight.processor.alerts.settings import AlertSettings, Policy
from infersight.processor.evaluate.findings import Finding
from infersight.processor.storage.base import Record, Storage
from infersight.stats.drift.fatigue import persistence_for

__all__ = ["AlertManager", "Notification", "SCHEMA", "SENT"]

_log = logging.getLogger(__name__)

SCHEMA = "infersight.alert/v1"
INCIDENT = "alert"
TRACK = "alert_track"
BUDGET = "alert_budget"
SENT = "alert_sent"
# verdicts kept per key and window size (enough for persistence, resolve and late revisions)
_KEEP_VERDICTS = 64
# history entries kept per incident (the first, "open", is always kept)
_KEEP_HISTORY = 300
# bookkeeping an incident record keeps that a notification does not carry
_INTERNAL = frozenset(("history", "windows_open", "notice_window", "pending_changes"))


@dataclass(frozen=True)
class Notification:
    """One message to the channels. ``event`` is ``open``, ``update``, ``resolve``,
    ``budget_exhausted`` or ``budget_summary``; ``incident`` the incident as JSON (without
    its history) for the first three."""

    event: str
    model: str
    severity: str
    title: str
    text: str
    sent_at: float
    channels: tuple[str, ...] = ()
    incident: Mapping[str, Any] | None = None
    kinds: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    # stable across replicas and retries: receivers may de-duplicate on it
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The webhook payload (see docs/alerts.md for the schema)."""
        d: dict[str, Any] = {
            "schema": SCHEMA,
            "id": self.id,
            "event": self.event,
            "model": self.model,
            "severity": self.severity,
            "title": self.title,
            "text": self.text,
            "sent_at": self.sent_at,
            "incident": dict(self.incident) if self.incident is not None else None,
        }
        d.update(self.extra)
        return d


@functools.lru_cache(maxsize=1024)
def _auto_persistence(size: int, subjects: int) -> int:
    """The fewest consecutive windows that keep ``subjects`` judged every ``size`` seconds under
    the false-alarm budget (docs/alert-fatigue.md); the longest the budget allows otherwise."""
    try:
        return persistence_for(max(subjects, 1), 86400 / max(size, 1))
    except ValueError:
        return 12


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _passes(policy: Policy, f: Finding) -> bool:
    if f.status not in policy.statuses:
        return False
    if policy.causes and (f.cause_class or "none") not in policy.causes:
        return False
    measurable = math.isfinite(f.statistic) and math.isfinite(f.threshold) and f.threshold != 0
    return not measurable or f.severity >= policy.min_severity


def _dedup_fields(policy: Policy, f: Finding) -> dict[str, Any]:
    return {k: policy.name if k == "policy" else getattr(f, k) for k in policy.dedup}


def _key_text(fields: Mapping[str, Any]) -> str:
    return "|".join(f"{k}={fields[k]}" for k in fields)


class AlertManager:
    """Applies the ``alerts:`` policies to findings and sends notifications to the channels.

    ``observe(findings)`` takes the findings of one window of one model (several windows are
    fine too) and returns the notifications it handed to channels. Thread-safe.
    ``clock`` (wall time) drives budgets and timestamps; persistence, resolve and cooldown
    follow window time. ``channels`` replaces the channels built from ``settings`` (by name).
    """

    def __init__(
        self,
        settings: AlertSettings,
        storage: Storage,
        *,
        clock: Callable[[], float] = time.time,
        channels: Mapping[str, Channel] | None = None,
        replica: str = "",
    ) -> None:
        self.settings = settings
        self.replica = replica  # written into each notification's record (who sent it)
        self.storage = storage
        self.clock = clock
        self.channels: dict[str, Channel] = (
            dict(channels) if channels is not None else {n: make_channel(c) for n, c in settings.channels.items()}
        )
        self._policies = {p.name: p for p in settings.policies}
        self._lock = threading.RLock()
        self._tracks: dict[str, dict[str, Any]] = {r.key: r.body for r in storage.get_records(TRACK)}
        self._budgets: dict[str, dict[str, Any]] = {r.key: r.body for r in storage.get_records(BUDGET)}
        self._incidents: dict[str, dict[str, Any]] = {}
        self._budget_dirty: set[str] = set()
        self._counts = {"notifications": 0, "suppressed": 0, "unrouted": 0, "revisions": 0}

    def _reload(self) -> None:
        self._tracks = {r.key: r.body for r in self.storage.get_records(TRACK)}
        self._budgets = {r.key: r.body for r in self.storage.get_records(BUDGET)}
        self._incidents = {}

    def reload_model(self, model: str) -> list[Notification]:
        """Forget what this process remembers of ``model``'s alerts and read it again from the
        store: tracks, open incidents (with what was notified) and the budget. Called when a
        replica takes a model over from another, whose observations this one never saw.

        Then catch up: the verdicts of windows newer than any this model's tracks recorded
        (stored findings, kind ``finding``) are observed now, in window order. They are the
        windows whose evaluation committed while the replica that made them died before its
        alert state did; returns what that sent (usually nothing).

        >>> from infersight.processor.storage import open_storage
        >>> from infersight.processor.alerts.settings import parse_alerts
        >>> AlertManager(parse_alerts({}, "alerts"), open_storage("sqlite:///:memory:")).reload_model("churn")
        []
        """
        with self._lock:
            tracks = {r.key: r.body for r in self.storage.get_records(TRACK, model=model)}
            budget = self.storage.get_records(BUDGET, key=model)
            for key in [k for k, t in self._tracks.items() if t.get("model") == model]:
                del self._tracks[key]
            self._tracks.update(tracks)
            for inc_id in [i for i, inc in self._incidents.items() if inc.get("model") == model]:
                del self._incidents[inc_id]
            if budget:
                self._budgets[model] = budget[0].body
            else:
                self._budgets.pop(model, None)
            self._budget_dirty.discard(model)
            return self._catch_up(model, tracks.values())

    def _catch_up(self, model: str, tracks: Iterable[Mapping[str, Any]]) -> list[Notification]:
        # newest window each window size's verdicts reached (a finding in scope of a policy
        # always leaves a verdict, so a newer stored finding was never observed)
        newest: dict[int, int] = {}
        for t in tracks:
            for size, verdicts in t.get("verdicts", {}).items():
                if verdicts:
                    newest[int(size)] = max(newest.get(int(size), verdicts[-1][0]), verdicts[-1][0])
        since = min(newest.values()) + 1 if newest else None
        missed: dict[tuple[int, int], list[Finding]] = {}
        from infersight.processor.evaluate.loop import stored_findings

        for r in stored_findings(self.storage, model, since):
            b = r.body
            size = int(b.get("window_size", 0))
            if size in newest and int(b["window_start"]) <= newest[size]:
                continue
            missed.setdefault((int(b["window_start"]), size), []).append(Finding.from_dict(b))
        out: list[Notification] = []
        for key in sorted(missed):
            out.extend(self.observe(missed[key]))
        if missed:
            _log.info("alerts for %r caught up on %d window(s) evaluated but never observed", model, len(missed))
        return out

    # -- public ---------------------------------------------------------------------------

    def observe(self, findings: Iterable[Finding]) -> list[Notification]:
        """Apply the policies to the findings of one evaluated window; return what was sent."""
        groups: dict[tuple[str, int, int, int], list[Finding]] = {}
        for f in findings:
            groups.setdefault((f.model, f.window_size, f.window_start, f.revision), []).append(f)
        out: list[Notification] = []
        with self._lock:
            dirty_tracks: set[str] = set()
            dirty_incidents: set[str] = set()
            pending: list[tuple[Notification, dict[str, Any] | None]] = []
            for (model, size, start, revision), group in sorted(groups.items(), key=lambda kv: (kv[0][2], kv[0][1])):
                for policy in self.settings.policies:
                    scoped: dict[str, list[Finding]] = {}
                    fields_of: dict[str, dict[str, Any]] = {}
                    # the key's fields other than the policy name, as a tuple: built once per key
                    # per call, not once per finding (100 features share one default key)
                    getters = [k for k in policy.dedup if k != "policy"]
                    by_values: dict[tuple[Any, ...], str] = {}
                    for f in group:
                        if policy.in_scope(f.model, f.kind, f.subject):
                            values = tuple(getattr(f, k) for k in getters)
                            key_or_none = by_values.get(values)
                            if key_or_none is None:
                                fields = _dedup_fields(policy, f)
                                key_or_none = by_values[values] = _key_text(fields)
                                fields_of[key_or_none] = fields
                            scoped.setdefault(key_or_none, []).append(f)
                    for key, fs in scoped.items():
                        breaching = [f for f in fs if _passes(policy, f)]
                        sent, changed = self._step(
                            policy, key, fields_of[key], model, size, start, revision, fs, breaching
                        )
                        pending.extend(sent)
                        if changed:
                            dirty_tracks.add(key)
                            inc_id = self._tracks[key].get("incident")
                            if inc_id:
                                dirty_incidents.add(inc_id)
            models = {m for m, _, _, _ in groups}
            # findings of several windows in one call: one notice per incident and event, the
            # newest window's (an incident opened in the first window is not re-announced by
            # the next before the first notice went out)
            latest: dict[tuple[Any, str], tuple[Notification, dict[str, Any] | None]] = {}
            for n, inc in pending:
                latest[((inc or {}).get("id") or id(n), n.event)] = (n, inc)
            pending = list(latest.values())
            sendable = [self._identify(n) for n in self._apply_budget(pending, dirty_incidents, models)]
            try:
                self._persist(dirty_tracks, dirty_incidents, models, sendable)
            except Exception:
                # nothing was sent: forget this call's changes so a retry of the window
                # starts from what the store holds
                self._reload()
                raise
            for n in sendable:
                out.append(self._dispatch(n))
        return out

    def incidents(
        self,
        state: str = "all",
        model: str | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> list[dict[str, Any]]:
        """Incidents (with history), newest first: ``state`` ``open``, ``resolved`` or ``all``;
        ``start``/``end`` (window time, Unix seconds) keep incidents active in ``[start, end)``."""
        if state not in ("open", "resolved", "all"):
            raise ValueError(f"state={state!r} is not one of open, resolved, all")
        with self._lock:
            records = self.storage.get_records(INCIDENT, model=model, end=end, newest_first=True)
        out = []
        for r in records:
            inc = r.body
            if state != "all" and inc["state"] != state:
                continue
            if start is not None and inc["state"] == "resolved" and (inc.get("resolved_window") or 0) < start:
                continue
            out.append(inc)
        return out

    def stats(self) -> dict[str, Any]:
        """Counters: notifications sent, suppressed by budget, unrouted, revisions seen; and
        each channel's (sent, failed, retried, dropped, abandoned, queued)."""
        with self._lock:
            return {**self._counts, "channels": {n: c.stats() for n, c in self.channels.items()}}

    def close(self, timeout: float = 5.0) -> None:
        """Flush the channels (at most ``timeout`` seconds in all) and stop their threads."""
        end = time.monotonic() + timeout
        for ch in self.channels.values():
            ch.close(max(0.0, end - time.monotonic()))

    # -- one key, one window --------------------------------------------------------------

    def _incident(self, inc_id: str | None) -> dict[str, Any] | None:
        if not inc_id:
            return None
        inc = self._incidents.get(inc_id)
        if inc is None:
            recs = self.storage.get_records(INCIDENT, key=inc_id)
            if not recs:
                return None
            inc = self._incidents[inc_id] = recs[0].body
        return inc

    def _step(
        self,
        policy: Policy,
        key: str,
        fields: dict[str, Any],
        model: str,
        size: int,
        start: int,
        revision: int,
        scoped: list[Finding],
        breaching: list[Finding],
    ) -> tuple[list[tuple[Notification, dict[str, Any] | None]], bool]:
        """Record one window's verdict for one key; the notifications it causes, and whether
        the stored state must be written (an ok window after an ok window with no open incident
        changes nothing a restart needs, so the quiet steady state writes nothing)."""
        now = self.clock()
        track = self._tracks.setdefault(
            key, {"key": key, "fields": fields, "policy": policy.name, "model": model, "verdicts": {}, "incident": None}
        )
        verdicts: list[list[Any]] = track["verdicts"].setdefault(str(size), [])
        is_breach = bool(breaching)
        prior = next((v for v in verdicts if v[0] == start), None)
        inc = self._incident(track.get("incident"))
        out: list[tuple[Notification, dict[str, Any] | None]] = []
        was_breach = bool(verdicts and verdicts[-1][1])
        quiet = not is_breach and not was_breach and (inc is None or inc["state"] != "open")
        if prior is not None:
            quiet = False
            if prior[1] != is_breach and revision > 0:
                self._counts["revisions"] += 1
                if inc is not None:
                    self._history(
                        inc,
                        "revised",
                        now,
                        size,
                        start,
                        revision,
                        was="breach" if prior[1] else "ok",
                        now_status="breach" if is_breach else "ok",
                        subjects=[f.subject for f in rank(breaching)],
                    )
            prior[1:] = [is_breach, revision, [f.subject for f in breaching]]
        else:
            verdicts.append([start, is_breach, revision, [f.subject for f in breaching]])
            verdicts.sort(key=lambda v: v[0])
            del verdicts[:-_KEEP_VERDICTS]
        if verdicts[-1][0] != start:
            # a late revision of an older window is history, not news: it is recorded above and
            # counts in the streaks from the next window on
            return out, True
        need = policy.persistence or _auto_persistence(size, len({f.subject for f in scoped}))
        runs = _subject_runs(verdicts)
        streak = max(runs.values(), default=0)
        # what the incident names: subjects that breached in enough windows in a row (a
        # one-window blip of another feature in the same window is not part of it)
        persisted = [f for f in breaching if runs.get(f.subject, 0) >= need]
        ok_streak = _trailing(verdicts, False)
        window_end = start + size

        if inc is not None and inc["state"] == "open":
            if prior is None:
                inc["windows_open"] = inc.get("windows_open", 0) + 1
            inc["updated_at"] = now
            if is_breach:
                changed = bool(persisted) and self._refresh(inc, policy, model, persisted, start, size)
                inc["last_breach_window"] = start
                if changed:
                    inc["pending_changes"] = True
                    self._history(inc, "changed", now, size, start, revision, subjects=inc["subjects_seen"])
                if not inc.get("notified"):
                    if window_end >= inc.get("quiet_until", 0):
                        out.append(self._notice("open", inc, now))
                elif (
                    inc.get("pending_changes")
                    and policy.update_every > 0
                    and inc["windows_open"] - inc.get("notice_window", 0) >= policy.update_every
                ):
                    out.append(self._notice("update", inc, now))
            elif ok_streak >= policy.resolve_after and not self._other_sizes_breaching(track, size):
                inc["state"] = "resolved"
                inc["resolved_at"] = now
                inc["resolved_window"] = window_end
                self._history(inc, "resolve", now, size, start, revision)
                if inc.get("notified"):
                    inc["quiet_until"] = window_end + policy.cooldown
                    out.append(self._notice("resolve", inc, now))
            return out, True

        if streak < need or not is_breach:
            return out, not quiet
        streak_start = verdicts[-streak][0]
        if inc is not None and window_end < inc.get("quiet_until", 0):
            # within the cooldown of the last notified resolve: the same incident, no message yet
            inc["state"] = "open"
            inc["resolved_at"] = inc["resolved_window"] = None
            inc["notified"] = False
            inc["windows_open"] = 0
            inc["notice_window"] = 0
            inc["updated_at"] = now
            self._refresh(inc, policy, model, persisted, start, size)
            self._history(
                inc, "reopened", now, size, start, revision, note="within cooldown; announced if it outlasts it"
            )
            return out, True
        inc_id = hashlib.sha1(f"{key}#{streak_start}".encode()).hexdigest()[:16]
        inc = {
            "id": inc_id,
            "key": key,
            "dedup": fields,
            "policy": policy.name,
            "severity": policy.severity,
            "model": model,
            "version": fields.get("version", breaching[0].version),
            "slice": fields.get("slice", breaching[0].slice),
            "state": "open",
            "opened_at": now,
            "updated_at": now,
            "resolved_at": None,
            "first_window": streak_start,
            "resolved_window": None,
            "window_size": size,
            "persistence": need,
            "notified": False,
            "suppressed": False,
            "windows_open": 0,
            "notice_window": 0,
            "subjects_seen": [],
            "history": [],
        }
        self._refresh(inc, policy, model, persisted, start, size)
        inc["pending_changes"] = False
        since = [f.since for f in persisted if f.since is not None]
        inc["since"] = min(since) if since else streak_start
        inc["since_iso"] = _iso(inc["since"])
        inc["api"] = f"/api/alerts?model={model}&state=all"
        track["incident"] = inc_id
        self._incidents[inc_id] = inc
        self._history(inc, "open", now, size, start, revision, subjects=inc["subjects_seen"])
        out.append(self._notice("open", inc, now))
        return out, True

    def _other_sizes_breaching(self, track: Mapping[str, Any], size: int) -> bool:
        return any(vs and vs[-1][1] for s, vs in track["verdicts"].items() if s != str(size))

    def _refresh(
        self, inc: dict[str, Any], policy: Policy, model: str, breaching: Sequence[Finding], start: int, size: int
    ) -> bool:
        """Fill what moved, cause, runbook and evidence from this window; ``True`` when a new
        subject appeared or the cause class changed."""
        s = self.settings
        ranked = rank(breaching)
        # one line per subject: a new category is both a drift and a data-quality finding
        firsts: dict[str, Finding] = {}
        for f in ranked:
            firsts.setdefault(f.subject, f)
        top = [describe_subject(f) for f in list(firsts.values())[: s.top_features]]
        cls = pick_cause_class(f.cause_class for f in ranked)
        lead = next((f for f in ranked if f.cause_class == cls), ranked[0] if ranked else None)
        cause = lead.cause if lead is not None else None
        subjects = list(firsts)
        by_class: dict[str, list[str]] = {}
        for f in ranked:
            names = by_class.setdefault(f.cause_class or "none", [])
            if f.subject not in names:
                names.append(f.subject)
        seen = list(inc.get("subjects_seen", []))
        new_subjects = [x for x in subjects if x not in seen]
        changed = bool(seen) and (bool(new_subjects) or cls != inc.get("cause_class"))
        seen.extend(new_subjects)
        runbooks: list[str] = []
        for f in ranked:
            rb = f.details.get("runbook") if isinstance(f.details, Mapping) else None
            if isinstance(rb, str) and rb:
                runbooks.append(rb)
        for rb in (s.runbook_for(model), policy.runbook):
            if rb:
                runbooks.append(rb)
        runbooks = list(dict.fromkeys(runbooks))
        evidence: list[dict[str, str]] = []
        seen_ev: set[tuple[str, str]] = set()
        for f in ranked:
            for ev in f.evidence:
                ident = (str(ev.get("trace_id", "")), str(ev.get("request_id", "")))
                if ident in seen_ev or len(evidence) >= s.evidence:
                    continue
                seen_ev.add(ident)
                item = {k: str(v) for k, v in ev.items()}
                item["subject"] = f.subject
                if s.trace_url and item.get("trace_id"):
                    item["url"] = s.trace_url.format(trace_id=item["trace_id"])
                evidence.append(item)
        if not evidence:
            evidence = list(inc.get("evidence", []))
        class_subjects = by_class.get(cls or "none", subjects)
        inc.update(
            {
                "kinds": sorted({f.kind for f in ranked} | set(inc.get("kinds", []))),
                "top": top,
                "subjects": subjects,
                "subjects_seen": seen,
                "cause": cause,
                "cause_class": cls,
                "cause_label": CAUSE_CLASS_LABELS.get(cls or "", "unknown"),
                "causes": by_class,
                "check_first": _check_first(ranked, cls, cause, class_subjects),
                "runbook": runbooks[0] if runbooks else None,
                "runbooks": runbooks,
                "evidence": evidence,
                "last_window": start,
                "last_window_size": size,
            }
        )
        return changed

    def _history(
        self, inc: dict[str, Any], event: str, now: float, size: int, start: int, revision: int, **extra: Any
    ) -> None:
        entry = {"event": event, "at": now, "window_start": start, "window_size": size, "revision": revision}
        if "now_status" in extra:
            extra["now"] = extra.pop("now_status")
        entry.update(extra)
        hist = inc.setdefault("history", [])
        hist.append(entry)
        if len(hist) > _KEEP_HISTORY:
            del hist[1 : len(hist) - _KEEP_HISTORY + 1]

    # -- messages, budget, delivery ---------------------------------------------------------

    def _notice(self, event: str, inc: dict[str, Any], now: float) -> tuple[Notification, dict[str, Any] | None]:
        where = inc["model"] + (f" v{inc['version']}" if inc.get("version") else "")
        if inc.get("slice"):
            where += f" [{inc['slice']}]"
        what = "/".join(_KIND_NAMES.get(k, k.replace("_", " ")) for k in inc.get("kinds", [])) or inc["policy"]
        moved = ", ".join(short(d) for d in inc.get("top", []))
        if event == "resolve":
            title = f"[{inc['severity']}] resolved: {what} on {where}"
            text = f"Resolved: {what} on {where} (open since {inc['since_iso']}); {moved or 'no subject'} back within limits."
        else:
            verb = "updated" if event == "update" else "open"
            title = f"[{inc['severity']}] {what} on {where}: {', '.join(inc.get('subjects', [])[:3])}"
            text = f"{what[0].upper() + what[1:]} on {where} since {inc['since_iso']} ({verb}): {moved}. "
            text += f"Likely cause: {inc['cause_label']}. Check first: {inc['check_first']}"
            if inc.get("runbook"):
                text += f" Runbook: {inc['runbook']}."
            ev = inc.get("evidence") or []
            if ev:
                first = ev[0]
                ids = [f"trace {first['trace_id']}" if first.get("trace_id") else ""]
                ids.append(f"request {first['request_id']}" if first.get("request_id") else "")
                text += f" Evidence: {', '.join(i for i in ids if i)}."
        body = {k: v for k, v in inc.items() if k not in _INTERNAL}
        n = Notification(
            event=event,
            model=inc["model"],
            severity=inc["severity"],
            title=title,
            text=text,
            sent_at=now,
            incident=body,
            kinds=tuple(inc.get("kinds", [])),
        )
        return n, inc

    def _apply_budget(
        self, pending: list[tuple[Notification, dict[str, Any] | None]], dirty: set[str], models: set[str]
    ) -> list[Notification]:
        b = self.settings.budget
        now = self.clock()
        period_start = math.floor(now / b.period) * b.period
        out: list[Notification] = []
        # every model seen in this call rolls its period over (so the summary of a period goes
        # out with the model's next window, not with its next alert); a new state only for
        # models that have something to send
        for model in sorted(models | {n.model for n, _ in pending}):
            state = self._budgets.get(model)
            if state is not None and state["period_start"] != period_start:
                if state.get("suppressed"):
                    out.append(self._budget_notice("budget_summary", model, state, now))
                state = None
            elif state is not None or not any(n.model == model for n, _ in pending):
                continue
            self._budgets[model] = {"model": model, "period_start": period_start, "sent": 0, "suppressed": 0}
            self._budget_dirty.add(model)
        for n, inc in pending:
            state = self._budgets[n.model]
            self._budget_dirty.add(n.model)
            if n.event == "resolve":
                # the open went out, so its resolve does too (never counted, never held back)
                out.append(n)
                continue
            assert inc is not None
            if state["sent"] < b.max:
                state["sent"] += 1
                inc["notified"] = True
                inc["suppressed"] = False
                inc["notice_window"] = inc.get("windows_open", 0)
                inc["pending_changes"] = False
                self._history(inc, "notified", now, inc["last_window_size"], inc["last_window"], 0, notice=n.event)
                out.append(replace(n, incident={**(n.incident or {}), "notified": True, "suppressed": False}))
                continue
            if n.event == "open" and inc.get("suppressed") == state["period_start"]:
                continue  # still held back: counted once per period
            state["suppressed"] += 1
            self._counts["suppressed"] += 1
            if n.event == "open":
                inc["suppressed"] = state["period_start"]  # truthy: held back in this period
            self._history(inc, "suppressed", now, inc["last_window_size"], inc["last_window"], 0, notice=n.event)
            dirty.add(inc["id"])
            if not state.get("notice_sent"):
                state["notice_sent"] = True
                state["severity"] = n.severity
                out.append(self._budget_notice("budget_exhausted", n.model, state, now))
        return out

    def _budget_notice(self, event: str, model: str, state: Mapping[str, Any], now: float) -> Notification:
        b = self.settings.budget
        until = state["period_start"] + b.period
        if event == "budget_exhausted":
            title = f"alert budget exhausted for {model}"
            text = (
                f"Alert budget of {b.max} notifications per {b.period:g}s exhausted for model {model}: "
                f"further alerts are suppressed until {_iso(until)} and counted ({state['suppressed']} so far). "
                f"All incidents stay recorded: GET /api/alerts?model={model}&state=open."
            )
        else:
            title = f"{state['suppressed']} alerts suppressed for {model}"
            text = (
                f"{state['suppressed']} alert notifications for model {model} were suppressed between "
                f"{_iso(state['period_start'])} and {_iso(until)} (budget {b.max} per {b.period:g}s). "
                f"See GET /api/alerts?model={model}."
            )
        extra = {"budget": {"max": b.max, "period": b.period, "suppressed": state["suppressed"], "until": until}}
        return Notification(
            event=event,
            model=model,
            severity=str(state.get("severity", "info")),
            title=title,
            text=text,
            sent_at=now,
            extra=extra,
        )

    def _identify(self, n: Notification) -> Notification:
        """Give ``n`` its id: the incident, the event and the incident's count of notices so
        far (a budget notice: the model, the event and the budget period), hashed. Whichever
        replica computes it from the same stored state gets the same id."""
        inc_id = str((n.incident or {}).get("id") or "")
        incident = self._incidents.get(inc_id) if inc_id else None
        if incident is not None:
            marks = ("notified", "resolve", "reopened")
            basis = f"{inc_id}|{n.event}|{sum(1 for h in incident.get('history', []) if h.get('event') in marks)}"
        else:
            basis = f"{n.model}|{n.event}|{inc_id}|{n.extra.get('budget', {}).get('until', n.sent_at)}"
        return replace(n, id=hashlib.sha1(basis.encode()).hexdigest()[:20])

    def sent(self, model: str | None = None) -> list[dict[str, Any]]:
        """The notifications recorded as sent (by any replica), oldest first."""
        return [r.body for r in self.storage.get_records(SENT, model=model)]

    def _dispatch(self, n: Notification) -> Notification:
        names = self.settings.channels_for(n.model, n.severity, n.kinds)
        delivered = tuple(c for c in names if c in self.channels)
        if not delivered:
            self._counts["unrouted"] += 1
            _log.debug("alert for %s matched no route: %s", n.model, n.title)
        payload = n.to_dict()
        for c in delivered:
            try:
                self.channels[c].send(payload)
            except Exception:  # a channel bug must not stop evaluation
                _log.exception("alert channel %s failed to take a notification", c)
        self._counts["notifications"] += 1
        return replace(n, channels=delivered)

    def _persist(
        self, tracks: set[str], incidents: set[str], models: set[str], notices: Sequence[Notification] = ()
    ) -> None:
        now = self.clock()
        records: list[Record] = []
        for n in notices:
            body = {
                "id": n.id,
                "event": n.event,
                "model": n.model,
                "severity": n.severity,
                "title": n.title,
                "incident": (n.incident or {}).get("id"),
                "sent_at": n.sent_at,
                "replica": self.replica,
            }
            records.append(Record(SENT, n.id, n.model, n.sent_at, body))
        for key in tracks:
            t = self._tracks[key]
            records.append(Record(TRACK, key, t["model"], now, t))
        for inc_id in incidents:
            inc = self._incidents.get(inc_id)
            if inc is not None:
                records.append(Record(INCIDENT, inc_id, inc["model"], float(inc["first_window"]), inc))
        for model in self._budget_dirty & models:
            if model in self._budgets:
                records.append(Record(BUDGET, model, model, now, self._budgets[model]))
        self.storage.put_records(records)
        self._budget_dirty.clear()
        # keep in memory only what a key still points at (open, or resolved within cooldown)
        current = {t.get("incident") for t in self._tracks.values()}
        for inc_id in [i for i in self._incidents if i not in current]:
            del self._incidents[inc_id]


_KIND_NAMES = {"slo": "SLO"}


def _check_first(ranked: Sequence[Finding], cls: str | None, cause: str | None, subjects: Sequence[str]) -> str:
    """What to check first, one sentence per kind of cause in the incident's class (at most
    two, in rank order), each naming only the subjects with that cause."""
    groups: dict[str, tuple[str, list[str]]] = {}
    for f in ranked:
        if f.cause and f.cause_class == cls:
            head = f.cause.split(":", 1)[0]
            names = groups.setdefault(head, (f.cause, []))[1]
            if f.subject not in names:
                names.append(f.subject)
    if not groups:
        return check_first(cause, list(subjects)[:3])
    return " ".join(check_first(c, names[:3]) for c, names in list(groups.values())[:2])


def _subject_runs(verdicts: Sequence[Sequence[Any]]) -> dict[str, int]:
    """For each subject breaching in the newest window, how many windows in a row (ending with
    the newest) it has breached in.

    Persistence counts per subject, not per key: a real shift stays in its feature, while
    chance breaches land on a different feature each window. So F features at a per-window
    false-alarm rate p give about F·W·p^N false incidents in W windows (docs/alert-fatigue.md),
    not W·(F·p)^N.
    """
    runs: dict[str, int] = {}
    alive: set[str] | None = None
    for v in reversed(verdicts):
        names = set(v[3]) if v[1] and len(v) > 3 else set()
        alive = names if alive is None else alive & names
        if not alive:
            break
        for name in alive:
            runs[name] = runs.get(name, 0) + 1
    return runs


def _trailing(verdicts: Sequence[Sequence[Any]], value: bool) -> int:
    n = 0
    for v in reversed(verdicts):
        if bool(v[1]) != value:
            break
        n += 1
    return n
