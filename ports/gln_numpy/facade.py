"""``GLN``: the facade's classic interface on the NumPy port (NumPy in, NumPy out)."""

from __future__ import annotations

from gln_jax.api.facade import EngineGLN
from gln_numpy.engine import NumpyEngine


class GLN(EngineGLN):
    """Gated Linear Network trained by the NumPy port.

    The interface is :class:`gln_jax.GLN`'s without ``backend``: ``predict``, ``fit``, ``save``
    and ``load`` take and return NumPy arrays, and ``state`` is a :class:`~gln_jax.GLNState` of
    NumPy arrays. The initial state is the reference's ``gln_jax.init(jax.random.key(seed),
    config)``, so one seed gives the same model in every backend (``float64`` is drawn with
    64-bit JAX enabled for that call only).

    The constructor's arguments are :meth:`gln_jax.api.facade.GLNBase.__init__`'s.
    """

    backend = "numpy"

    def _adopt(self, config, state, base_predictor, learning_rate) -> None:
        engine = NumpyEngine(config)
        self._bind(engine, config, engine.from_reference(state), base_predictor, learning_rate)
