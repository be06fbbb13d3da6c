"""One BLAS thread for the commands that own their process (``profile``, ``drift``).

Their matrix products are small (the multivariate part: a 20,000 × 20 SVD when profiling, 300 ×
500 by 500 × 500 products a drift window): too small for BLAS threads to pay, and where other
processes share the cores OpenBLAS's spinning threads cost more than the product. Measured on
the benchmark VM: ``infersight drift`` 1.6 s → 0.8 s of CPU and 4.4 s → 1.9 s wall; the SVD in
``infersight profile`` 10 ms on one thread, 18-30 ms on two when quiet and up to 0.25 s under
load. A library caller's process (the processor, a notebook) is left alone, and so is a thread
count the user set.

Example:
    >>> one_blas_thread()  # before or after numpy is imported
"""

from __future__ import annotations

import os
import sys

__all__ = ["one_blas_thread"]

_SETTINGS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def one_blas_thread() -> None:
    """Ask numpy's BLAS for one thread, unless the user set a thread count.

    Before numpy is imported the environment says so, and OpenBLAS never starts its threads
    (starting them is 40-60 ms of CPU at ``import numpy`` on 2 cores); after, OpenBLAS is told
    through its own call. Best effort: another BLAS, or no /proc, is left as it is.
    """
    if any(os.environ.get(v) for v in _SETTINGS):
        return
    if "numpy" not in sys.modules:
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        return
    try:
        import ctypes

        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower() and line.rstrip().endswith(".so")}
        for path in paths:
            lib = ctypes.CDLL(path)
            for symbol in (
                "scipy_openblas_set_num_threads64_",
                "scipy_openblas_set_num_threads",
                "openblas_set_num_threads",
            ):
                if hasattr(lib, symbol):
                    getattr(lib, symbol)(1)
                    break
    except (OSError, ValueError, AttributeError):
        pass
