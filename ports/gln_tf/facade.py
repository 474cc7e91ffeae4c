"""``GLN``: the facade's classic interface as a ``tf.Module`` (TF tensors in and out)."""

from __future__ import annotations

import tensorflow as tf

from gln_jax.api.facade import GLNBase
from gln_tf.module import GLNModule
from gln_tf.multiclass import predict_classes
from gln_tf.types import GLNState, to_reference


class GLN(GLNBase, GLNModule):
    """Gated Linear Network on the TensorFlow port, a ``tf.Module`` of ``tf.Variable``\\ s.

    The interface is :class:`gln_jax.GLN`'s without ``backend``: ``predict`` and ``fit`` take
    NumPy arrays or tensors and return ``tf.Tensor``\\ s. The initial state is the reference's
    ``gln_jax.init(jax.random.key(seed), config)``, so one seed gives the same model in every
    backend. The compiled methods are traced once (see :class:`~gln_tf.module.GLNModule`).
    ``predict`` and ``fit`` are the classic interface; the module's own tensor-level ``train``
    and ``fit`` stay reachable as ``GLNModule.train(model, ...)``.

    Example:
        >>> model = GLN([4, 4, 1], 784, num_classes=10)  # doctest: +SKIP
        >>> model.fit(x_train, y_train)  # doctest: +SKIP

    The constructor's arguments are :meth:`gln_jax.api.facade.GLNBase.__init__`'s.
    """

    backend = "tf"

    def _adopt(self, config, state, base_predictor, learning_rate) -> None:
        GLNModule.__init__(self, config, state)
        self.base_predictor = base_predictor
        self.learning_rate = learning_rate

    def _reference_state(self) -> GLNState:
        return to_reference(self.state)

    def _classes(self, probs):
        return predict_classes(probs, config=self.config)

    def _step_count(self) -> int:
        return int(self.step.numpy())

    def _predict_probs(self, inputs, side_info) -> tf.Tensor:
        return self.predict_probabilities(inputs, side_info)

    def _train_probs(self, inputs, side_info, targets, rates) -> tf.Tensor:
        return GLNModule.train(self, inputs, side_info, targets, rates)

    def _fit_probs(self, inputs, side_info, targets, rates, batch_size, num_epochs):
        return GLNModule.fit(self, inputs, side_info, targets, rates, batch_size, num_epochs)
