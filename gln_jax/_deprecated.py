"""Warnings for module paths that moved, attributed to the line that imports the old path.

Python's default filters show a ``DeprecationWarning`` only when it is attributed to
``__main__``; :func:`warn_moved` names the importing line (``warnings`` skips the frames of the
import machinery by itself), so a script that imports an old path sees the warning.
"""

from __future__ import annotations

import warnings


def warn_moved(old: str, new: str) -> None:
    """Warns that module ``old`` moved to ``new``; call it from the body of module ``old``.

    Args:
        old: the deprecated dotted module path, e.g. ``"gln_jax.core.transforms"``.
        new: where to import from instead, e.g. ``"gln_jax.transforms"``.
    """
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release: import {new}",
        DeprecationWarning,
        stacklevel=3,  # 1: this function, 2: the deprecated module's body, 3: the importer
    )
