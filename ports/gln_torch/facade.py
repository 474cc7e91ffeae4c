"""``GLN``: the facade's classic interface as a PyTorch ``nn.Module`` (torch tensors in/out)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from gln_jax.api.facade import GLNBase, build_model
from gln_jax.core.types import (
    DEFAULT_CONTEXT_MAP_SIZE,
    DEFAULT_DTYPE,
    DEFAULT_LEARNING_RATE,
    DEFAULT_NUM_CLASSES,
    DEFAULT_PRED_CLIPPING,
    DEFAULT_WEIGHT_CLIPPING,
)
from gln_torch.engine import fit_module, predict_batch, train_batch
from gln_torch.module import GLNModule
from gln_torch.multiclass import predict_classes
from gln_torch.types import GLNState, to_reference


class GLN(GLNBase, GLNModule):
    """Gated Linear Network on the PyTorch port, an ``nn.Module`` whose state is buffers.

    The interface is :class:`gln_jax.GLN`'s without ``backend``: ``predict`` and ``fit`` take
    NumPy arrays or tensors (on any device) and return tensors on the module's device. The
    initial state is the reference's ``gln_jax.init(jax.random.key(seed), config)``, so one seed
    gives the same model in every backend. ``.to(device)``, ``.double()`` and ``state_dict``
    work as for any module (see :class:`~gln_torch.module.GLNModule`); :meth:`load` puts the
    model on CUDA when available.

    Example:
        >>> device = "cuda" if torch.cuda.is_available() else "cpu"  # doctest: +SKIP
        >>> model = GLN([4, 4, 1], 784, num_classes=10).to(device)  # doctest: +SKIP
        >>> model.fit(x_train, y_train)  # doctest: +SKIP

    Args:
        layer_sizes: neurons per layer; a final one-neuron layer is appended when needed.
        input_size: width ``N`` of an example (entries expected in [0, 1]).
        context_map_size: halfspaces per neuron.
        num_classes: 2 for binary, ``> 2`` for one-vs-all.
        base_predictor: optional host-side NumPy callable ``[B, N] -> [B, P]``.
        learning_rate: positive float or a schedule ``step -> rate`` (stepped per example).
        pred_clipping: probabilities are clipped into ``[p, 1 - p]``.
        weight_clipping: weights are clipped into ``[-w, w]``.
        bias: add a constant bias input (logit 1.0) to every layer.
        context_bias: random non-zero gating thresholds.
        seed: integer seed of the gating hyperplanes.
        dtype: ``"float32"`` or ``"float64"``.
        side_info_size: width of the gates' side information (``None``: ``input_size``).
        side_info_transform: ``None``, ``"center"``, ``"standardize"`` or a ``TransformConfig``
            (see :class:`gln_jax.GLN`).

    Attributes:
        backend: the backend's name.
        base_predictor: the base predictor, or ``None``.
        learning_rate: the rate or schedule.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        input_size: int,
        context_map_size: int = DEFAULT_CONTEXT_MAP_SIZE,
        num_classes: int = DEFAULT_NUM_CLASSES,
        base_predictor: Callable | None = None,
        learning_rate: float | Callable = DEFAULT_LEARNING_RATE,
        pred_clipping: float = DEFAULT_PRED_CLIPPING,
        weight_clipping: float = DEFAULT_WEIGHT_CLIPPING,
        bias: bool = True,
        context_bias: bool = True,
        *,
        seed: int = 0,
        dtype: str = DEFAULT_DTYPE,
        side_info_size: int | None = None,
        side_info_transform=None,
    ):
        config, state = build_model(
            layer_sizes,
            input_size,
            context_map_size,
            num_classes,
            base_predictor,
            learning_rate,
            pred_clipping,
            weight_clipping,
            bias,
            context_bias,
            seed=seed,
            dtype=dtype,
            scoped_x64=True,
            backend="pytorch",
            side_info_size=side_info_size,
        )
        GLNModule.__init__(self, config, state)
        self.base_predictor = base_predictor
        self.learning_rate = learning_rate
        self._bind_side_info(input_size, side_info_transform)

    backend = "pytorch"

    @classmethod
    def _from_reference(cls, config, state, base_predictor, learning_rate) -> GLN:
        model = cls.__new__(cls)
        GLNModule.__init__(model, config, state)
        model.base_predictor = base_predictor
        model.learning_rate = learning_rate
        return model

    def _reference_state(self) -> GLNState:
        return to_reference(self.state)

    def _classes(self, probs):
        return predict_classes(probs, config=self.config)

    def _step_count(self) -> int:
        return int(self.step)

    def _predict_probs(self, inputs, side_info) -> torch.Tensor:
        return predict_batch(self.state, inputs, side_info, config=self.config)

    def _train_probs(self, inputs, side_info, targets, rates) -> torch.Tensor:
        state, probs = train_batch(
            self.state, inputs, side_info, targets, rates, config=self.config
        )
        self.assign(state)
        return probs

    def _fit_probs(self, inputs, side_info, targets, rates, batch_size, num_epochs):
        return fit_module(self, inputs, side_info, targets, rates, batch_size, num_epochs)
