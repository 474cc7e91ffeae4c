"""``GLN``: the facade's classic interface as a PyTorch ``nn.Module`` (torch tensors in/out)."""

from __future__ import annotations

import torch

from gln_jax.api.facade import GLNBase
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

    The constructor's arguments are :meth:`gln_jax.api.facade.GLNBase.__init__`'s.
    """

    backend = "pytorch"

    def _adopt(self, config, state, base_predictor, learning_rate) -> None:
        GLNModule.__init__(self, config, state)
        self.base_predictor = base_predictor
        self.learning_rate = learning_rate

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
