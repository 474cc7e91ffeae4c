"""``GLN``: the stateful facade with the classic interface, on any backend.

``GLN(backend, layer_sizes, input_size, ...)`` builds one model and holds it in the backend's
engine (:mod:`gln_jax.api.backends`); everything it shares with the ports' own ``GLN``
classes and with :class:`~gln_jax.api.gaussian_facade.GaussianGLN` is written once in
:mod:`gln_jax.api.base`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax

from gln_jax.api.backends import get_backend
from gln_jax.api.base import BernoulliGLN
from gln_jax.api.build import build_model
from gln_jax.api.runner import EngineRunner
from gln_jax.api.sharded_engine import make_facade_engine
from gln_jax.api.side_info import SideInfoPipeline
from gln_jax.core.types import (
    DEFAULT_CONTEXT_MAP_SIZE,
    DEFAULT_DTYPE,
    DEFAULT_HYPERPLANE_BIAS_SCALE,
    DEFAULT_LEARNING_RATE,
    DEFAULT_NUM_CLASSES,
    DEFAULT_PRED_CLIPPING,
    DEFAULT_WEIGHT_CLIPPING,
)


class GLN(BernoulliGLN):
    """Gated Linear Network with the classic ``predict(input, target)`` interface, any backend.

    Args:
        backend: ``"jax"``, ``"numpy"``, ``"pytorch"`` or ``"tf"`` (see
            :func:`gln_jax.backend_names` for aliases).
        layer_sizes: neurons per layer; a final one-neuron layer is appended when the list does
            not end in 1.
        input_size: width of an example (entries expected in [0, 1]).
        context_map_size: hyperplanes per neuron (``2**context_map_size`` weight rows).
        num_classes: 2 for a binary classifier; ``> 2`` trains one binary GLN per class
            (one-vs-all) and predicts the argmax.
        base_predictor: optional host-side NumPy callable ``[B, input_size] -> [B, P]``
            giving the base predictions (clipped into ``[pred_clipping, 1 - pred_clipping]``)
            instead of the clipped input itself.
        learning_rate: positive float, or a schedule ``step -> rate`` (optax schedules work,
            and so does :func:`gln_jax.inverse_time`, the paper's
            ``min(100 / t, 0.01)``), stepped once per example: ``step`` is the number of
            examples learned before this one (0 for the first).
        pred_clipping: probabilities are clipped into ``[p, 1 - p]`` at every layer.
        weight_clipping: weights are clipped into ``[-w, w]`` after every update.
        bias: add a constant bias input (logit 1.0) to every layer.
        context_bias: random non-zero offsets for the gating hyperplanes,
            ``N(0, hyperplane_bias_scale**2)``; zero offsets if false.
        seed: integer seed of the gating hyperplanes (explicit; no global random state).
        dtype: ``"float32"`` (default) or ``"float64"`` (the JAX backend needs
            ``jax_enable_x64``).
        side_info_size: width ``N`` of the side information the gating sees, passed to
            ``predict`` and ``fit`` as ``side_info=``; ``None`` (default) means
            ``input_size``, and the gating then sees the input itself unless ``side_info=``
            is given.
        side_info_transform: ``None`` (default), ``"center"``, ``"standardize"`` or a
            :class:`gln_jax.core._transforms.TransformConfig` (``make_transform``): an online,
            per-feature running mean (and scale) applied to the side information; its
            statistics learn from each training example before it is used
            (:mod:`gln_jax.core._transforms`) and are saved in checkpoints. With its
            ``base_gain`` set it also gives the base predictions, ``sigmoid(base_gain *
            transformed side information / scale)`` (then no ``base_predictor``, and
            ``side_info_size`` equal to the examples' width).
        devices: ``"jax"`` backend only: a device count or list of devices; the one-vs-all
            classes are sharded over them (:mod:`gln_jax.core._sharding`).
        mesh: ``"jax"`` backend only: a one-axis ``jax.sharding.Mesh`` to shard the classes
            over (instead of ``devices``).
        hyperplane_normalize: gating normals of unit norm (Gaussian vectors divided by their
            norm) if true, standard Gaussian vectors ``[N]`` if false; ``None`` (default)
            follows ``context_bias``, as in earlier releases.
        hyperplane_bias_scale: standard deviation of the gating offsets (default 1.0);
            another value needs ``context_bias=True``. Scale it with the side information: a
            scale well below the projections' spread makes every hyperplane cut near the
            origin.

    One seed gives the same model in every backend: the state is always the reference's
    ``gln_jax.init(jax.random.key(seed), config)``. Inputs are expected in [0, 1]: by default
    they are the base predictions themselves (clipped into ``[pred_clipping, 1 -
    pred_clipping]``) and also what the gating looks at; scale raw ``uint8`` pixels by 1/255
    first (inputs outside [0, 1] without a ``base_predictor`` warn once per model).

    Attributes:
        config: the static :class:`~gln_jax.GLNConfig`.
        state: the backend's state (for ``"jax"`` a :class:`~gln_jax.GLNState` of jax arrays).
            Training donates the previous state's buffers: copy it
            (``jax.tree.map(jnp.copy, model.state)``) to keep a snapshot.

    Raises:
        ValueError, TypeError: naming the bad argument.

    Example:
        >>> model = GLN("jax", [4, 4, 1], 784, num_classes=10)  # doctest: +SKIP
        >>> model.predict(x_batch, target=y_batch)  # doctest: +SKIP
    """

    def __init__(
        self,
        backend: str,
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
        devices=None,
        mesh=None,
        hyperplane_normalize: bool | None = None,
        hyperplane_bias_scale: float = DEFAULT_HYPERPLANE_BIAS_SCALE,
    ):
        name = get_backend(backend).name  # an unknown backend is named before anything is built
        sharded = devices is not None or mesh is not None
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
            scoped_x64=name != "jax",
            backend=name,
            side_info_size=side_info_size,
            hyperplane_normalize=hyperplane_normalize,
            hyperplane_bias_scale=hyperplane_bias_scale,
            draw=not sharded,  # a sharded model is drawn straight onto its mesh
        )
        engine = make_facade_engine(name, config, devices, mesh)
        if sharded:
            state = engine.init(jax.random.key(int(seed)))
        else:
            state = engine.from_reference(state)
        pipeline = SideInfoPipeline(config, input_size, base_predictor, side_info_transform)
        self._assemble(EngineRunner(engine, state), pipeline, learning_rate)

    @classmethod
    def load(
        cls,
        path,
        backend: str = "jax",
        *,
        base_predictor: Callable | None = None,
        learning_rate: float | Callable | None = None,
        devices=None,
        mesh=None,
    ) -> GLN:
        """Restores a model saved by any backend into ``backend``.

        Args:
            path: a file written by :meth:`save` of any backend.
            backend: the backend to load into.
            base_predictor: required when the saved model had one (it is not stored).
            learning_rate: overrides the stored rate; required when the saved model used a
                schedule.
            devices, mesh: shard the classes of the loaded model (``"jax"`` only), as in
                :class:`GLN`.

        Returns:
            The model, with predictions identical to the saved one's.
        """
        name = get_backend(backend).name
        config, state, predictor, rate, side, step = cls._restore(
            path, base_predictor, learning_rate, name
        )
        engine = make_facade_engine(name, config, devices, mesh)
        model = cls.__new__(cls)
        pipeline = SideInfoPipeline(
            config, side.input_size, predictor, side.transform, side.transform_state
        )
        model._assemble(EngineRunner(engine, engine.from_reference(state)), pipeline, rate, step)
        return model
