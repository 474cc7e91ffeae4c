"""gln_numpy: the NumPy port of gln-jax, module by module (no randomness of its own).

Vectorised across neurons and classes, in the dtype it is given; the functions never write
into their arguments. Start from a reference state converted with :func:`from_reference`, or
use :class:`GLN`.
"""

from gln_numpy.engine import NumpyEngine as NumpyEngine
from gln_numpy.facade import GLN as GLN
from gln_numpy.gating import batch_context_indices as batch_context_indices
from gln_numpy.gating import context_indices as context_indices
from gln_numpy.multiclass import class_targets as class_targets
from gln_numpy.multiclass import predict_classes as predict_classes
from gln_numpy.network import apply as apply
from gln_numpy.network import base_predictions as base_predictions
from gln_numpy.network import batch_apply as batch_apply
from gln_numpy.network import batch_update as batch_update
from gln_numpy.network import update as update
from gln_numpy.scan import scan_batch_update as scan_batch_update
from gln_numpy.scan import scan_update as scan_update
from gln_numpy.stream import fit_stream as fit_stream
from gln_numpy.types import GLNConfig as GLNConfig
from gln_numpy.types import GLNState as GLNState
from gln_numpy.types import LayerState as LayerState
from gln_numpy.types import from_reference as from_reference
from gln_numpy.types import make_config as make_config
from gln_numpy.types import to_reference as to_reference

__all__ = [
    "GLN",
    "GLNConfig",
    "GLNState",
    "LayerState",
    "NumpyEngine",
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
