"""Optional dependencies (the install's "extras"): import them, or say which extra brings them.

Parquet files need ``pyarrow`` (extra ``parquet``); the processor needs ``uvicorn``, ``grpcio``,
``pyyaml``... (extra ``processor``). A user who installed the core package and runs such a
command should read one line naming the missing package and the ``pip install`` that fixes it,
not a ``ModuleNotFoundError`` traceback. :func:`needs_extra` turns the second into the first, for
every import made inside it, so a command wraps its imports once instead of testing each package.

Example:
    >>> with needs_extra("parquet", "reading 'train.parquet'"):
    ...     import json  # any import of a package the extra provides
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["MissingExtra", "needs_extra"]


class MissingExtra(ImportError):
    """An optional package is not installed; the message names it and the extra to install."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python package {module!r}, which is not installed; "
            f"install it with: pip install 'infersight[{extra}]'",
            name=module,
        )
        self.module, self.extra = module, extra


@contextlib.contextmanager
def needs_extra(extra: str, purpose: str) -> Iterator[None]:
    """Re-raise a missing third-party module imported inside the block as :class:`MissingExtra`.

    A missing ``infersight`` module is a broken install, not a missing extra, and passes
    through unchanged.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if not top or top == "infersight":
            raise
        raise MissingExtra(exc.name or top, extra, purpose) from exc
