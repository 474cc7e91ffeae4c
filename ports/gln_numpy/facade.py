"""``GLN``: the facade's classic interface on the NumPy port (NumPy in, NumPy out)."""

from __future__ import annotations

from gln_jax.api.base import PortGLN
from gln_jax.api.runner import EngineRunner
from gln_numpy.engine import NumpyEngine


class GLN(PortGLN):
    """Gated Linear Network trained by the NumPy port.

    The interface is :class:`gln_jax.GLN`'s without ``backend``: ``predict``, ``fit``, ``save``
    and ``load`` take and return NumPy arrays, and ``state`` is a :class:`~gln_jax.GLNState` of
    NumPy arrays. The initial state is the reference's ``gln_jax.init(jax.random.key(seed),
    config)``, so one seed gives the same model in every backend (``float64`` is drawn with
    64-bit JAX enabled for that call only).

    Example:
        >>> model = GLN([4, 4, 1], 784, num_classes=10)  # doctest: +SKIP
        >>> model.fit(x_train, y_train)  # doctest: +SKIP
    """

    port_backend = "numpy"

    @classmethod
    def _make_runner(cls, config, state) -> EngineRunner:
        engine = NumpyEngine(config)
        return EngineRunner(engine, engine.from_reference(state))
