"""Array annotations of the functional API: shapes and dtypes a reader and a checker can use.

The public functions of :mod:`gln_jax.core` are annotated with jaxtyping's shaped types
(``Real[ArrayLike, "B P"]``: a real array of shape ``[B, P]``), in the shape letters of
:mod:`gln_jax.core.types`. JAX does not check annotations; a test run can, with jaxtyping's
import hook and a runtime type checker::

    from jaxtyping import install_import_hook
    with install_import_hook(CHECKED_MODULES, "beartype.beartype"):
        import gln_jax.core.network

(``tests/conftest.py`` does this when ``GLN_JAX_TYPECHECK=1``). Arguments are
``jax.typing.ArrayLike`` (JAX or NumPy arrays and scalars); results are ``jax.Array``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jax.typing import ArrayLike as ArrayLike
from jaxtyping import Array as Array
from jaxtyping import Bool as Bool
from jaxtyping import Float as Float
from jaxtyping import Int as Int
from jaxtyping import Real as Real
from jaxtyping import Shaped as Shaped

#: A schedule: a callable from the step (an int32 array) to the rate(s) of that step.
Schedule = Callable[[Any], Any]

#: One example's rate: a real scalar or a schedule.
Rate = Real[ArrayLike, ""] | Schedule

#: The modules whose public functions carry checked annotations.
CHECKED_MODULES = (
    "gln_jax.core.network",
    "gln_jax.core.scan",
    "gln_jax.core.stream",
    "gln_jax.core._saliency",
    "gln_jax.core.gating",
    "gln_jax.core.multiclass",
    "gln_jax.core._ensemble",
)
