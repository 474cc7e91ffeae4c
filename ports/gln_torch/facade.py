"""``GLN``: the facade's classic interface on the PyTorch port (torch tensors in and out).

The model's state lives in a :class:`~gln_torch.module.GLNModule` (an ``nn.Module`` of
buffers), reachable as :attr:`GLN.module`; ``to``, ``cpu``, ``cuda``, ``double``, ``float``,
``state_dict`` and ``load_state_dict`` are forwarded to it.
"""

from __future__ import annotations

import torch

from gln_jax.api.base import PortGLN
from gln_jax.api.engine import gating_input
from gln_torch.engine import fit_module, predict_batch, train_batch
from gln_torch.module import GLNModule
from gln_torch.multiclass import predict_classes
from gln_torch.types import GLNConfig, GLNState, to_reference


class ModuleRunner:
    """A :class:`~gln_torch.module.GLNModule` as the facade's runner: tensors on its device.

    Args:
        module: the module holding the state (its buffers are assigned after each update).
    """

    backend = "pytorch"

    def __init__(self, module: GLNModule):
        self.module = module

    @property
    def config(self) -> GLNConfig:
        return self.module.config

    @property
    def state(self) -> GLNState:
        return self.module.state

    @state.setter
    def state(self, value: GLNState) -> None:
        self.module.assign(value)

    def step(self) -> int:
        return int(self.module.step)

    def reference_state(self) -> GLNState:
        return to_reference(self.module.state)

    def predict(self, inputs, side_info) -> torch.Tensor:
        side_info = gating_input(inputs, side_info)
        return predict_batch(self.module.state, inputs, side_info, config=self.config)

    def train(self, inputs, side_info, targets, rates) -> torch.Tensor:
        side_info = gating_input(inputs, side_info)
        state, probs = train_batch(
            self.module.state, inputs, side_info, targets, rates, config=self.config
        )
        self.module.assign(state)
        return probs

    def fit(self, inputs, side_info, targets, rates, batch_size: int, num_epochs: int):
        side_info = gating_input(inputs, side_info)
        return fit_module(self.module, inputs, side_info, targets, rates, batch_size, num_epochs)

    def classes(self, probs) -> torch.Tensor:
        return predict_classes(probs, config=self.config)

    def normalize(self, probs) -> torch.Tensor:
        return probs / probs.sum(dim=1, keepdim=True)


class GLN(PortGLN):
    """Gated Linear Network on the PyTorch port; its state is an ``nn.Module`` of buffers.

    The interface is :class:`gln_jax.GLN`'s without ``backend``: ``predict`` and ``fit`` take
    NumPy arrays or tensors (on any device) and return tensors on the module's device. The
    initial state is the reference's ``gln_jax.init(jax.random.key(seed), config)``, so one seed
    gives the same model in every backend. :attr:`module` is the
    :class:`~gln_torch.module.GLNModule` holding the state; ``.to(device)``, ``.double()`` and
    ``state_dict`` work as for any module (and return the model where the module's return the
    module); :meth:`load` puts the model on CUDA when available.

    Example:
        >>> device = "cuda" if torch.cuda.is_available() else "cpu"  # doctest: +SKIP
        >>> model = GLN([4, 4, 1], 784, num_classes=10).to(device)  # doctest: +SKIP
        >>> model.fit(x_train, y_train)  # doctest: +SKIP
    """

    port_backend = "pytorch"

    @classmethod
    def _make_runner(cls, config, state) -> ModuleRunner:
        return ModuleRunner(GLNModule(config, state))

    @property
    def module(self) -> GLNModule:
        """The ``nn.Module`` holding the state (buffers; no parameters)."""
        return self._runner.module

    @property
    def device(self) -> torch.device:
        """The device of the state."""
        return self.module.device

    def to(self, *args, **kwargs) -> GLN:
        """Moves (or casts) the state as ``nn.Module.to`` does; returns the model."""
        with self._lock:
            self.module.to(*args, **kwargs)
        return self

    def cpu(self) -> GLN:
        """Moves the state to the CPU; returns the model."""
        return self.to("cpu")

    def cuda(self, device=None) -> GLN:
        """Moves the state to a CUDA device; returns the model."""
        with self._lock:
            self.module.cuda(device)
        return self

    def double(self) -> GLN:
        """Casts the state to float64 (``config.dtype`` follows); returns the model."""
        return self.to(torch.float64)

    def float(self) -> GLN:
        """Casts the state to float32 (``config.dtype`` follows); returns the model."""
        return self.to(torch.float32)

    def state_dict(self, *args, **kwargs) -> dict:
        """The module's ``state_dict`` (keys ``layers.{i}.{field}`` and ``step``)."""
        with self._lock:
            return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True):
        """Loads a ``state_dict`` into the module (same configuration)."""
        with self._lock:
            return self.module.load_state_dict(state_dict, strict=strict)
