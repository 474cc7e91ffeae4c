"""``GLN``: the facade's classic interface on the TensorFlow port (TF tensors in and out).

The model's state lives in a :class:`~gln_tf.module.GLNModule` (a ``tf.Module`` of
``tf.Variable``\\ s), reachable as :attr:`GLN.module`.
"""

from __future__ import annotations

import tensorflow as tf

from gln_jax.api.base import PortGLN
from gln_jax.api.engine import gating_input
from gln_tf.module import GLNModule
from gln_tf.multiclass import predict_classes
from gln_tf.types import GLNConfig, GLNState, to_reference


class ModuleRunner:
    """A :class:`~gln_tf.module.GLNModule` as the facade's runner: its compiled functions, TF
    tensors out.

    Args:
        module: the module holding the state in variables.
    """

    backend = "tf"

    def __init__(self, module: GLNModule):
        self.module = module

    @property
    def config(self) -> GLNConfig:
        return self.module.config

    @property
    def state(self) -> GLNState:
        return self.module.state

    def step(self) -> int:
        return int(self.module.step.numpy())

    def reference_state(self) -> GLNState:
        return to_reference(self.module.state)

    def predict(self, inputs, side_info) -> tf.Tensor:
        return self.module.predict_probabilities(inputs, gating_input(inputs, side_info))

    def train(self, inputs, side_info, targets, rates) -> tf.Tensor:
        return self.module.train(inputs, gating_input(inputs, side_info), targets, rates)

    def fit(self, inputs, side_info, targets, rates, batch_size: int, num_epochs: int):
        side_info = gating_input(inputs, side_info)
        return self.module.fit(inputs, side_info, targets, rates, batch_size, num_epochs)

    def classes(self, probs) -> tf.Tensor:
        return predict_classes(probs, config=self.config)

    def normalize(self, probs) -> tf.Tensor:
        return probs / tf.reduce_sum(probs, axis=1, keepdims=True)


class GLN(PortGLN):
    """Gated Linear Network on the TensorFlow port; its state is a ``tf.Module`` of variables.

    The interface is :class:`gln_jax.GLN`'s without ``backend``: ``predict`` and ``fit`` take
    NumPy arrays or tensors and return ``tf.Tensor``\\ s. The initial state is the reference's
    ``gln_jax.init(jax.random.key(seed), config)``, so one seed gives the same model in every
    backend. :attr:`module` is the :class:`~gln_tf.module.GLNModule` holding the state; its
    compiled functions are traced once per configuration.

    Example:
        >>> model = GLN([4, 4, 1], 784, num_classes=10)  # doctest: +SKIP
        >>> model.fit(x_train, y_train)  # doctest: +SKIP
    """

    port_backend = "tf"

    @classmethod
    def _make_runner(cls, config, state) -> ModuleRunner:
        return ModuleRunner(GLNModule(config, state))

    @property
    def module(self) -> GLNModule:
        """The ``tf.Module`` holding the state in ``tf.Variable``\\ s (none trainable)."""
        return self._runner.module
