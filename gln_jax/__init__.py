"""gln-jax: Gated Linear Networks in JAX, with NumPy, PyTorch and TensorFlow ports.

The functional API (``init``, ``apply``, ``update``, ``batch_update``, the ``lax.scan``
drivers) is the reference implementation; :class:`GLN` is a thin stateful facade over it.
"""

from gln_jax import utils as utils
from gln_jax.api.facade import GLN as GLN
from gln_jax.api.gaussian_facade import GaussianGLN as GaussianGLN
from gln_jax.api.registry import backend_names as backend_names
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
from gln_jax.core.saliency import Saliency as Saliency
from gln_jax.core.saliency import saliency as saliency
from gln_jax.core.stream import fit_stream as fit_stream
from gln_jax.core.stream import scan_batch_update as scan_batch_update
from gln_jax.core.stream import scan_update as scan_update
from gln_jax.core.types import GLNConfig as GLNConfig
from gln_jax.core.types import GLNState as GLNState
from gln_jax.core.types import LayerState as LayerState
from gln_jax.core.types import make_config as make_config
from gln_jax.data import registry as datasets

__version__ = "0.1.0"

__all__ = [
    "GLN",
    "GLNConfig",
    "GLNState",
    "GaussianConfig",
    "GaussianGLN",
    "LayerState",
    "Saliency",
    "apply",
    "backend_names",
    "batch_apply",
    "base_predictions",
    "batch_context_indices",
    "batch_update",
    "class_targets",
    "context_indices",
    "datasets",
    "fit_stream",
    "init",
    "make_config",
    "make_gaussian_config",
    "predict_classes",
    "saliency",
    "scan_batch_update",
    "scan_update",
    "update",
    "utils",
]
