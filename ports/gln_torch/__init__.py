"""gln_torch: the PyTorch port of gln-jax, module by module (no randomness of its own).

Vectorised across neurons and classes, under ``torch.no_grad()``, on whatever device the state
is on. Start from a reference state converted with :func:`from_reference`, or use :class:`GLN`
(an ``nn.Module`` whose state is buffers).
"""

try:  # fail with the install command rather than a bare ModuleNotFoundError
    import torch as _torch  # noqa: F401
except ImportError as _err:
    raise ImportError(
        f"gln_torch needs PyTorch, which is not installed ({_err}); install it with: "
        "pip install 'gln-jax[torch]'",
        name="torch",
    ) from _err

from gln_torch.engine import TorchEngine as TorchEngine
from gln_torch.facade import GLN as GLN
from gln_torch.gating import batch_context_indices as batch_context_indices
from gln_torch.gating import context_indices as context_indices
from gln_torch.module import GLNModule as GLNModule
from gln_torch.multiclass import class_targets as class_targets
from gln_torch.multiclass import predict_classes as predict_classes
from gln_torch.network import apply as apply
from gln_torch.network import base_predictions as base_predictions
from gln_torch.network import batch_apply as batch_apply
from gln_torch.network import batch_update as batch_update
from gln_torch.network import update as update
from gln_torch.scan import scan_batch_update as scan_batch_update
from gln_torch.scan import scan_update as scan_update
from gln_torch.stream import fit_stream as fit_stream
from gln_torch.types import GLNConfig as GLNConfig
from gln_torch.types import GLNState as GLNState
from gln_torch.types import LayerState as LayerState
from gln_torch.types import from_reference as from_reference
from gln_torch.types import make_config as make_config
from gln_torch.types import to_reference as to_reference

__all__ = [
    "GLN",
    "GLNConfig",
    "GLNModule",
    "GLNState",
    "LayerState",
    "TorchEngine",
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
