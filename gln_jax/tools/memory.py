"""The process's peak memory, as every measuring tool reports it."""

from __future__ import annotations

import resource
import sys


def peak_rss_mib() -> float:
    """The process's peak resident set size so far, in MiB (``getrusage``'s ``ru_maxrss``).

    Linux reports ``ru_maxrss`` in KiB, macOS in bytes.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0
