"""gln-jax: Gated Linear Networks in JAX, with NumPy, PyTorch and TensorFlow ports.

The functional API (``init``, ``apply``, ``update``, ``batch_update``, the ``lax.scan``
drivers) is the reference implementation; :class:`GLN` is a thin stateful facade over it.

Names are resolved lazily (PEP 562): ``import gln_jax`` (and so any ``gln_jax.*`` submodule,
such as the command line's parser) imports no JAX until a name that needs it is used.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

from gln_jax._version import __version__ as __version__

#: Public name -> ``(module, attribute)``; ``attribute`` ``None`` means the module itself.
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "GLN": ("gln_jax.api.facade", "GLN"),
    "GaussianConfig": ("gln_jax.core.gaussian_types", "GaussianConfig"),
    "GaussianGLN": ("gln_jax.api.gaussian_facade", "GaussianGLN"),
    "InverseTime": ("gln_jax.core.schedules", "InverseTime"),
    "GLNConfig": ("gln_jax.core.types", "GLNConfig"),
    "GLNState": ("gln_jax.core.types", "GLNState"),
    "LayerState": ("gln_jax.core.types", "LayerState"),
    "Saliency": ("gln_jax.core._saliency", "Saliency"),
    "apply": ("gln_jax.core.network", "apply"),
    "backend_names": ("gln_jax.api.backends", "backend_names"),
    "base_predictions": ("gln_jax.core.network", "base_predictions"),
    "batch_apply": ("gln_jax.core.network", "batch_apply"),
    "batch_context_indices": ("gln_jax.core.gating", "batch_context_indices"),
    "batch_update": ("gln_jax.core.network", "batch_update"),
    "class_targets": ("gln_jax.core.multiclass", "class_targets"),
    "context_indices": ("gln_jax.core.gating", "context_indices"),
    "datasets": ("gln_jax.datasets", None),
    "fit_stream": ("gln_jax.core.stream", "fit_stream"),
    "init": ("gln_jax.core.network", "init"),
    "inverse_time": ("gln_jax.core.schedules", "inverse_time"),
    "make_config": ("gln_jax.core.types", "make_config"),
    "make_gaussian_config": ("gln_jax.core.gaussian_types", "make_gaussian_config"),
    "predict_classes": ("gln_jax.core.multiclass", "predict_classes"),
    "saliency": ("gln_jax.core._saliency", "saliency"),
    "scan_batch_update": ("gln_jax.core.scan", "scan_batch_update"),
    "scan_update": ("gln_jax.core.scan", "scan_update"),
    "update": ("gln_jax.core.network", "update"),
    "utils": ("gln_jax.utils", None),
}

__all__ = sorted(_EXPORTS)

if "jax" in sys.modules:  # JAX already loaded: register the pytree and export types now, so
    importlib.import_module("gln_jax.core.types")  # jax.export.deserialize finds them at once


def __getattr__(name: str):
    """Imports a public name on first use and caches it in the module's namespace."""
    try:
        module_name, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'gln_jax' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from gln_jax import datasets as datasets  # noqa: F401
    from gln_jax import utils as utils
    from gln_jax.api.backends import backend_names as backend_names
    from gln_jax.api.facade import GLN as GLN
    from gln_jax.api.gaussian_facade import GaussianGLN as GaussianGLN
    from gln_jax.core._saliency import Saliency as Saliency
    from gln_jax.core._saliency import saliency as saliency
    from gln_jax.core.gating import batch_context_indices as batch_context_indices
    from gln_jax.core.gating import context_indices as context_indices
    from gln_jax.core.gaussian_types import GaussianConfig as GaussianConfig
    from gln_jax.core.gaussian_types import make_gaussian_config as make_gaussian_config
    from gln_jax.core.multiclass import class_targets as class_targets
    from gln_jax.core.multiclass import predict_classes as predict_classes
    from gln_jax.core.network import apply as apply
    from gln_jax.core.network import base_predictions as base_predictions
    from gln_jax.core.network import batch_apply as batch_apply
    from gln_jax.core.network import batch_update as batch_update
    from gln_jax.core.network import init as init
    from gln_jax.core.network import update as update
    from gln_jax.core.scan import scan_batch_update as scan_batch_update
    from gln_jax.core.scan import scan_update as scan_update
    from gln_jax.core.schedules import InverseTime as InverseTime
    from gln_jax.core.schedules import inverse_time as inverse_time
    from gln_jax.core.stream import fit_stream as fit_stream
    from gln_jax.core.types import GLNConfig as GLNConfig
    from gln_jax.core.types import GLNState as GLNState
    from gln_jax.core.types import LayerState as LayerState
    from gln_jax.core.types import make_config as make_config
