"""``GLN``: the facade's classic interface as a PyTorch ``nn.Module`` (torch tensors in/out)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gln_numpy
import numpy as np
import torch

from gln_jax import _validation
from gln_jax.checkpoint import save_checkpoint
from gln_torch._types import GLNConfig, GLNState, to_reference
from gln_torch.engine import fit_module, predict_batch, train_batch
from gln_torch.module import GLNModule
from gln_torch.multiclass import predict_classes


class GLN(GLNModule):
    """Gated Linear Network on the PyTorch port, an ``nn.Module`` whose state is buffers.

    The interface is :class:`gln_jax.GLN`'s without ``backend``: ``predict`` and ``fit`` take
    NumPy arrays or tensors (on any device) and return tensors on the module's device. The
    initial state is the reference's ``gln_jax.init(jax.random.key(seed), config)``, so one seed
    gives the same model in every backend. ``.to(device)``, ``.double()`` and ``state_dict``
    work as for any module (see :class:`~gln_torch.module.GLNModule`).

    Args:
        layer_sizes: neurons per layer; a final one-neuron layer is appended when needed.
        input_size: width ``N`` of an example.
        context_map_size: halfspaces per neuron.
        num_classes: 2 for binary, ``> 2`` for one-vs-all.
        base_predictor: optional host-side NumPy callable ``[B, N] -> [B, K]``.
        learning_rate: positive float or a schedule ``step -> rate`` (stepped per example).
        pred_clipping: probabilities are clipped into ``[p, 1 - p]``.
        weight_clipping: weights are clipped into ``[-w, w]``.
        bias: add a constant bias input (logit 1.0) to every layer.
        context_bias: random non-zero gating thresholds.
        seed: integer seed of the gating hyperplanes.
        dtype: ``"float32"`` or ``"float64"``.

    Attributes:
        backend: ``"pytorch"``.
        base_predictor: the base predictor, or ``None``.
        learning_rate: the rate or schedule.

    Example:
        >>> model = GLN([4, 4, 1], 784, num_classes=10).to("cuda")  # doctest: +SKIP
        >>> model.fit(x_train, y_train)  # doctest: +SKIP
    """

    backend = "pytorch"

    def __init__(
        self,
        layer_sizes: Sequence[int],
        input_size: int,
        context_map_size: int = 4,
        num_classes: int = 2,
        base_predictor: Callable | None = None,
        learning_rate: float | Callable = 1e-4,
        pred_clipping: float = 1e-3,
        weight_clipping: float = 5.0,
        bias: bool = True,
        context_bias: bool = True,
        *,
        seed: int = 0,
        dtype: str = "float32",
    ):
        reference = gln_numpy.GLN(  # the checks and the reference's init, in one place
            layer_sizes,
            input_size,
            context_map_size=context_map_size,
            num_classes=num_classes,
            base_predictor=base_predictor,
            learning_rate=learning_rate,
            pred_clipping=pred_clipping,
            weight_clipping=weight_clipping,
            bias=bias,
            context_bias=context_bias,
            seed=seed,
            dtype=dtype,
        )
        super().__init__(reference.config, reference.state)
        self.base_predictor = base_predictor
        self.learning_rate = learning_rate

    @classmethod
    def _from_parts(cls, config: GLNConfig, state: GLNState, base_predictor, learning_rate):
        model = cls.__new__(cls)
        GLNModule.__init__(model, config, state)
        model.base_predictor = base_predictor
        model.learning_rate = learning_rate
        return model

    def reference_state(self) -> GLNState:
        """A NumPy copy of the state in the reference layout."""
        return to_reference(self.state)

    def _prepare(self, input, target):
        """Checks and converts one call's arguments; touches no state."""
        config = self.config
        side_info, _ = _validation.check_examples(
            input, width=config.input_size, dtype=config.dtype
        )
        inputs = _validation.base_predictions(self.base_predictor, side_info, config)
        targets = None
        if target is not None:
            targets = _validation.check_targets(
                target, batch=side_info.shape[0], num_classes=config.num_classes
            )
        return inputs, side_info, targets

    def _rates(self, count: int) -> np.ndarray:
        step = int(self.step) if callable(self.learning_rate) else 0
        return _validation.learning_rates(self.learning_rate, step, count, self.config.dtype)

    def _output(self, probs: torch.Tensor, return_probs: bool) -> torch.Tensor:
        if not return_probs:
            return predict_classes(probs, config=self.config)
        return probs[:, 0] if self.config.num_classes == 2 else probs

    def predict(self, input, target=None, return_probs: bool = False) -> torch.Tensor:
        """Predicts a batch and, given targets, learns from it online.

        Every prediction of a batch uses the weights from before the batch; with ``target``
        the batch then updates the model (a batch of one is exact online learning).

        Args:
            input: ``[B, N]`` examples (or one ``[N]`` example, answered as a batch of one).
            target: optional ``[B]`` labels in ``[0, num_classes)`` (bools for a binary model).
            return_probs: return probabilities instead of classes.

        Returns:
            A tensor on the module's device: ``[B]`` classes (bools for a binary model), or
            probabilities, ``[B]`` for a binary model and ``[B, num_classes]`` otherwise.
        """
        inputs, side_info, targets = self._prepare(input, target)
        if targets is None:
            probs = predict_batch(self.state, inputs, side_info, config=self.config)
        else:
            rates = self._rates(inputs.shape[0])
            state, probs = train_batch(
                self.state, inputs, side_info, targets, rates, config=self.config
            )
            self.assign(state)
        return self._output(probs, return_probs)

    def fit(self, X, y, batch_size: int = 1, num_epochs: int = 1) -> torch.Tensor:
        """Trains on whole arrays from the current state, in order (no shuffling).

        Args:
            X: ``[N, input_size]`` examples.
            y: ``[N]`` labels.
            batch_size: examples per update, positive (1 is exact online learning; a last
                partial batch is a smaller batch).
            num_epochs: passes over the data, positive.

        Returns:
            ``[num_epochs * N]`` class predictions made before each update, on the module's
            device.
        """
        for name, value in (("batch_size", batch_size), ("num_epochs", num_epochs)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        inputs, side_info, targets = self._prepare(X, y)
        rates = self._rates(inputs.shape[0] * int(num_epochs))
        probs = fit_module(
            self, inputs, side_info, targets, rates, int(batch_size), int(num_epochs)
        )
        return predict_classes(probs, config=self.config)

    def save(self, path) -> None:
        """Writes a portable checkpoint that any backend can load (see
        :meth:`gln_jax.GLN.save`)."""
        save_checkpoint(
            path,
            self.config,
            self.reference_state(),
            learning_rate=None if callable(self.learning_rate) else self.learning_rate,
            has_base_predictor=self.base_predictor is not None,
        )

    @classmethod
    def load(
        cls,
        path,
        *,
        base_predictor: Callable | None = None,
        learning_rate: float | Callable | None = None,
    ) -> GLN:
        """Restores a model saved by any backend (see :meth:`gln_jax.GLN.load`).

        Args:
            path: a file written by ``save`` of any backend.
            base_predictor: required when the saved model had one.
            learning_rate: overrides the stored rate; required after a schedule.

        Returns:
            The model on CUDA when available (else the CPU), with predictions identical to the
            saved one's.
        """
        reference = gln_numpy.GLN.load(
            path, base_predictor=base_predictor, learning_rate=learning_rate
        )
        return cls._from_parts(
            reference.config, reference.state, reference.base_predictor, reference.learning_rate
        )
