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


def reset_peak_rss() -> bool:
    """Resets the peak that :func:`peak_rss_mib` reports to the current resident size.

    Linux only (``/proc/self/clear_refs``); elsewhere nothing changes.

    Returns:
        Whether the peak was reset.
    """
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def _status_mib(field: str) -> float | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmHWM``, ``VmRSS``) in MiB; ``None`` where
    the file or the field is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def current_peak_rss_mib() -> float:
    """The peak resident size since the last :func:`reset_peak_rss` (``VmHWM``), in MiB.

    Falls back to :func:`peak_rss_mib` where ``/proc/self/status`` is missing.
    """
    peak = _status_mib("VmHWM")
    return peak_rss_mib() if peak is None else peak


def rss_mib() -> float:
    """The current resident set size in MiB (``VmRSS``; ``nan`` where it cannot be read)."""
    current = _status_mib("VmRSS")
    return float("nan") if current is None else current
