"""The one per-user cache folder of gln-jax, shared by the kernel and the datasets.

``$XDG_CACHE_HOME/gln_jax`` when that variable is set, else ``~/.cache/gln_jax``; the fused
kernel's libraries live in its ``kernels/`` folder and downloaded datasets in
``datasets/<name>/``.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The cache folder's name under ``$XDG_CACHE_HOME``.
NAME = "gln_jax"


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/gln_jax``, or ``~/.cache/gln_jax`` when the variable is unset or empty."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / NAME
