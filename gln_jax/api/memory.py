"""Host-memory checks: a model or a ``fit`` call that would not fit in memory fails fast.

The estimates are deliberately simple (bytes of state times a factor measured per backend, plus
a fixed cost per one-vs-all model) and are compared with the memory available now; where that
cannot be read the checks pass.

Example:
    >>> format_bytes(3 * 2**20)
    '3.0 MiB'
"""

from __future__ import annotations

import numpy as np

from gln_jax.api.backends import get_backend
from gln_jax.core.types import GLNConfig

#: Bytes of bookkeeping per one-vs-all model on top of the state while a model is built
#: (measured: a million one-neuron classes peak at about 80 bytes per class beyond the state).
CONSTRUCTION_BYTES_PER_MODEL = 128


def available_memory_bytes() -> int | None:
    """Memory available to a new allocation now: ``psutil.virtual_memory().available`` when
    psutil is installed, else ``MemAvailable`` of ``/proc/meminfo``; ``None`` when neither can
    be read (the check is then skipped)."""
    try:
        import psutil  # noqa: PLC0415 - optional
    except ImportError:
        psutil = None
    if psutil is not None:
        return int(psutil.virtual_memory().available)
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def format_bytes(count: int) -> str:
    """``count`` bytes in the unit that shows it best (B, MiB or GiB)."""
    if count >= 2**30:
        return f"{count / 2**30:.2f} GiB"
    if count >= 2**20:
        return f"{count / 2**20:.1f} MiB"
    return f"{count} B"


def construction_bytes(config: GLNConfig, backend: str) -> int:
    """Estimated peak memory of building (or loading) a model of ``config`` in ``backend``."""
    factor = get_backend(backend).construction_peak
    return int(factor * config.state_nbytes()) + CONSTRUCTION_BYTES_PER_MODEL * config.num_models


def check_construction_memory(config: GLNConfig, backend: str) -> None:
    """Fails fast when building a model would take more memory than is available.

    Raises:
        ValueError: naming the estimated peak and the available memory.
    """
    needed = construction_bytes(config, backend)
    available = available_memory_bytes()
    if available is not None and needed > available:
        raise ValueError(
            f"building this model in backend {get_backend(backend).name!r} needs about "
            f"{format_bytes(needed)} ({format_bytes(config.state_nbytes())} of state), more "
            f"than the {format_bytes(available)} of memory available now; reduce "
            "context_map_size (each step doubles the weight tables), layer_sizes or num_classes"
        )


def check_fit_size(config: GLNConfig, count: int, num_epochs: int) -> None:
    """Fails fast when ``fit``'s rates and returned predictions cannot fit in memory.

    Raises:
        ValueError: naming ``num_epochs``, the bytes needed and the bytes available.
    """
    itemsize = np.dtype(config.dtype).itemsize
    needed = count * num_epochs * (config.num_models + 1) * itemsize
    available = available_memory_bytes()
    if available is not None and needed > available:
        raise ValueError(
            f"num_epochs={num_epochs} over {count} examples gives {count * num_epochs} "
            f"predictions, whose rates and probabilities need {format_bytes(needed)}, more "
            f"than the {format_bytes(available)} of memory available; fit fewer epochs per call"
        )
