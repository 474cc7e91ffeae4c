"""gln_tf: the TensorFlow port of gln-jax, module by module (no randomness of its own).

Vectorised across neurons and classes; the scans are ``tf.while_loop``\\ s inside
``tf.function``\\ s traced once per config. Start from a reference state converted with
:func:`from_reference`, or use :class:`GLN` (a ``tf.Module`` of ``tf.Variable``\\ s).
"""

try:  # fail with the install command rather than a bare ModuleNotFoundError
    import tensorflow as _tensorflow  # noqa: F401
except ImportError as _err:
    raise ImportError(
        f"gln_tf needs TensorFlow, which is not installed ({_err}); install it with: "
        "pip install 'gln-jax[tf]'",
        name="tensorflow",
    ) from _err

from gln_tf.engine import TFEngine as TFEngine
from gln_tf.facade import GLN as GLN
from gln_tf.gating import batch_context_indices as batch_context_indices
from gln_tf.gating import context_indices as context_indices
from gln_tf.module import GLNModule as GLNModule
from gln_tf.multiclass import class_targets as class_targets
from gln_tf.multiclass import predict_classes as predict_classes
from gln_tf.network import apply as apply
from gln_tf.network import base_predictions as base_predictions
from gln_tf.network import batch_apply as batch_apply
from gln_tf.network import batch_update as batch_update
from gln_tf.network import update as update
from gln_tf.scan import scan_batch_update as scan_batch_update
from gln_tf.scan import scan_update as scan_update
from gln_tf.stream import fit_stream as fit_stream
from gln_tf.types import GLNConfig as GLNConfig
from gln_tf.types import GLNState as GLNState
from gln_tf.types import LayerState as LayerState
from gln_tf.types import from_reference as from_reference
from gln_tf.types import make_config as make_config
from gln_tf.types import to_reference as to_reference

__all__ = [
    "GLN",
    "GLNConfig",
    "GLNModule",
    "GLNState",
    "LayerState",
    "TFEngine",
    "apply",
    "base_predictions",
    "batch_apply",
    "batch_context_indices",
    "batch_update",
    "class_targets",
    "context_indices",
    "fit_stream",
    "from_reference",
    "make_config",
    "predict_classes",
    "scan_batch_update",
    "scan_update",
    "to_reference",
    "update",
]
