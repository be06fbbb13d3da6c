"""What a stop does: export what infersight holds, within a bound, before the process ends.

A process stops in one of three ways, and each gets the same bounded flush
(:func:`flush_within`, one shared budget of ``STOP_FLUSH_SECONDS`` per process):

* a normal interpreter exit (scripts, gunicorn workers, waitress after Ctrl-C, werkzeug's
  reloader): ``atexit`` (in :mod:`infersight._state`);
* an ASGI server's lifespan shutdown: :mod:`infersight.integrations.asgi`;
* a signal whose disposition ends the process without ``atexit``: SIGTERM's default action
  (``werkzeug.serving.run_simple``, ``flask run``, waitress) or a server that re-raises the signal
  after its own graceful shutdown (uvicorn restores the handlers it found and raises the signal
  again). :func:`watch_signals` puts a :class:`_FlushThenChain` in front of whatever handles
  SIGTERM and SIGINT: it flushes, then hands the signal on exactly as before (the previous
  Python handler, or the default action re-raised), so exit codes and a server's own graceful
  stop stay what they were, and a second Ctrl-C during the flush still stops at once.

Only the main thread may set signal handlers. A configure() from another thread leaves the
handlers *pending*; they are installed the next time infersight runs on the main thread (a
monitored call, a request, a middleware being built). Until then a stop by signal is covered
only where the process exits normally.

Example:
    >>> import threading
    >>> run_within(lambda: None, 1.0, "example")
    True
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["STOP_FLUSH_SECONDS", "run_within", "flush_within", "watch_signals", "unwatch_signals", "signals_pending"]

STOP_FLUSH_SECONDS = 5.0
SIGNALS = (signal.SIGTERM, signal.SIGINT)

# What the stop flushes may spend, in all, in this process: an unreachable collector costs one
# bound, not one per signal, lifespan shutdown and atexit (the exporters' own timeouts and
# retries add up to tens of seconds). A reachable one costs milliseconds, so the budget lasts.
_budget = STOP_FLUSH_SECONDS
_budget_lock = threading.Lock()


def run_within(fn: Callable[[], Any], seconds: float, name: str) -> bool:
    """Run ``fn`` on a daemon thread and wait for it at most ``seconds``; True if it finished.

    The thread is left behind when it overruns (a daemon: it never holds the process open).
    Waiting in the calling thread keeps the caller's order (the flush is over before the
    signal goes on), and a signal arriving meanwhile still runs its handler: the wait is
    interruptible, so a second Ctrl-C is not held up.
    """
    done = threading.Event()

    def run() -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - a stop goes on whatever the export does
            pass
        finally:
            done.set()

    try:
        threading.Thread(target=run, name=name, daemon=True).start()
    except RuntimeError:  # no new threads (interpreter shutting down): run it here, unbounded
        run()
    return done.wait(max(0.0, seconds))


def flush_within(rt: Any, seconds: float = STOP_FLUSH_SECONDS, what: str = "flush") -> bool:
    """Export what ``rt`` holds (``what="flush"``) or flush and stop it (``"shutdown"``), for at
    most ``seconds`` and never more than what is left of this process's stop budget.

    Returns True when it finished in time; False when it overran or no budget is left."""
    global _budget
    with _budget_lock:
        allowed = min(seconds, _budget)
    if allowed <= 0:
        return False
    if what == "shutdown":
        fn: Callable[[], Any] = rt.shutdown
    else:

        def fn() -> Any:
            return rt.flush(int(allowed * 1000))

    started = time.monotonic()
    finished = run_within(fn, allowed, "InferSightStopFlush")
    with _budget_lock:
        _budget -= time.monotonic() - started
    return finished


class _FlushThenChain:
    """A signal handler that flushes, then passes the signal on to what handled it before."""

    def __init__(self, signum: int, previous: Any, runtime: Callable[[], Any]) -> None:
        self.signum = signum
        self.previous = previous
        self.runtime = runtime

    def __call__(self, signum: int, frame: Any) -> Any:
        global _flushing
        rt = self.runtime()
        # Not while a flush is already under way: this is a second signal interrupting it, and
        # it must act at once (the default action, KeyboardInterrupt, a server's force-exit).
        if rt is not None and not _flushing and getattr(rt.settings, "flush_on_signal", True):
            _flushing = True
            try:
                flush_within(rt, STOP_FLUSH_SECONDS)
            finally:
                _flushing = False
        previous = self.previous
        if callable(previous):
            return previous(signum, frame)  # the app's or server's own handler decides the rest
        # The default action: put it back and raise the signal again, so the process ends as it would have.
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
        return None


_flushing = False
_pending = False


def signals_pending() -> bool:
    """True while handlers are wanted but could not yet be installed (not the main thread)."""
    return _pending


def watch_signals(runtime: Callable[[], Any]) -> bool:
    """Put a flush in front of the SIGTERM and SIGINT handlers, keeping each as the next step.

    Idempotent: a handler that is already ours is left alone. A signal that is ignored
    (``SIG_IGN``: nothing stops the process) is left alone too. Off the main thread nothing
    can be installed: the handlers stay pending and True is returned only once they are in.
    """
    global _pending
    if threading.current_thread() is not threading.main_thread():
        _pending = True
        return False
    _pending = False
    for signum in SIGNALS:
        try:
            current = signal.getsignal(signum)
            # None: a handler set outside Python, which we could not call on: leave it be.
            if current is None or current == signal.SIG_IGN or isinstance(current, _FlushThenChain):
                continue
            signal.signal(signum, _FlushThenChain(signum, current, runtime))
        except (ValueError, OSError, RuntimeError):  # an embedded interpreter without signals
            continue
    return True


def unwatch_signals() -> None:
    """Take our handlers out again where they are still the current ones (``flush_on_signal``
    switched off); elsewhere they stay in the chain and only pass the signal on."""
    global _pending
    _pending = False
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        try:
            current = signal.getsignal(signum)
            if isinstance(current, _FlushThenChain):
                signal.signal(signum, current.previous)
        except (ValueError, OSError, RuntimeError):
            continue
