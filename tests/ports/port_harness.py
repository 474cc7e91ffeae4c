"""The shared differential harness of the ports: a backend registry, random cases and data.

Every backend is described once (:class:`Backend`: its name, how to turn NumPy arrays into its
arrays and back, how to convert a reference state), so each check is written once and runs
against every port. A backend whose framework is not installed is skipped with the reason and
the install command.

Gating is discontinuous: a one-ulp difference in ``v . z`` flips a context bit and two runs
diverge. Test examples are therefore generated and then rejected (and resampled) whenever
``|v . z - b|`` is within a margin of zero for any hyperplane of the model.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import random
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

import gln_jax
from gln_jax import GLNConfig, GLNState, LayerState, make_config
from gln_jax.api import backends

#: One seed per test session, shared by every parametrization of a test (``hypothesis.seed``),
#: so each backend meets the same examples and the reference is compiled and run once per
#: example. Fixed by default so that CI is reproducible; ``GLN_PORTS_SEED=<int>`` picks
#: another session, ``GLN_PORTS_SEED=random`` a fresh one (its seed is in the report header).
_SEED = os.environ.get("GLN_PORTS_SEED", "0")
SESSION_SEED = random.SystemRandom().randrange(2**32) if _SEED == "random" else int(_SEED)

#: Relative distance every test example keeps from every gating hyperplane.
MARGIN = 1e-4


@dataclasses.dataclass(frozen=True)
class Backend:
    """One framework the GLN runs in.

    Attributes:
        name: the facade's backend name.
        package: the import name of its functional API (``gln_jax`` for the reference).
        framework: the module whose absence skips the backend (``None``: always installed).
        extra: the pip extra that installs the framework.
    """

    name: str
    package: str
    framework: str | None = None
    extra: str | None = None

    @property
    def available(self) -> bool:
        return self.framework is None or importlib.util.find_spec(self.framework) is not None

    @property
    def skip_reason(self) -> str:
        return (
            f"backend {self.name!r} needs {self.framework}, which is not installed "
            f"(pip install 'gln-jax[{self.extra}]')"
        )

    def module(self, name: str | None = None):
        """The port's package, or its submodule ``name`` (``gating``, ``network``, ...)."""
        return importlib.import_module(self.package if name is None else f"{self.package}.{name}")

    def to_native(self, array) -> Any:
        """A NumPy array (or scalar) as this framework's array."""
        return _TO_NATIVE[self.name](np.asarray(array))

    def to_numpy(self, value) -> np.ndarray:
        """This framework's array as a NumPy array."""
        return _TO_NUMPY[self.name](value)

    def from_reference(self, state: GLNState) -> GLNState:
        """A NumPy-leaved reference state as this backend's functional state."""
        if self.name == "jax":
            return jax.tree.map(jnp.asarray, state)
        return self.module().from_reference(state)

    def to_reference(self, state: GLNState) -> GLNState:
        """This backend's functional state as NumPy arrays."""
        if self.name == "jax":
            return jax.tree.map(np.asarray, state)
        return self.module().to_reference(state)


def _torch_native(array: np.ndarray):
    import torch
    from gln_torch.types import default_device

    return torch.tensor(array, device=default_device())


def _torch_numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy()


def _tf_native(array: np.ndarray):
    import tensorflow as tf

    return tf.constant(array)


_TO_NATIVE: dict[str, Callable] = {
    "jax": jnp.asarray,
    "numpy": lambda a: np.array(a, copy=True),
    "pytorch": _torch_native,
    "tf": _tf_native,
}
_TO_NUMPY: dict[str, Callable] = {
    "jax": np.asarray,
    "numpy": np.asarray,
    "pytorch": _torch_numpy,
    "tf": lambda value: value.numpy(),
}

#: Read from the one backend registry of the library (the reference first).
BACKENDS = tuple(
    Backend(entry.name, entry.port or "gln_jax", entry.framework, entry.extra)
    for entry in backends.BACKENDS
)
REFERENCE = BACKENDS[0]
PORTS = BACKENDS[1:]
BY_NAME = {backend.name: backend for backend in BACKENDS}


def params(backends) -> list:
    """``pytest.param`` per backend, skipped with its reason when its framework is missing."""
    return [
        pytest.param(
            backend,
            id=backend.name,
            marks=pytest.mark.skipif(not backend.available, reason=backend.skip_reason),
        )
        for backend in backends
    ]


# --------------------------------------------------------------------------- cases and data


@dataclasses.dataclass(frozen=True)
class Case:
    """A random configuration and the seed of its state and data (hashable)."""

    config: GLNConfig
    seed: int


@st.composite
def cases(draw, dtype: str = "float32", hyperplane_options: bool = False) -> Case:
    """Random small configurations: depth, widths, gating, classes, bias, clipping; with
    ``hyperplane_options`` also how the hyperplanes are drawn (``hyperplane_normalize``,
    ``hyperplane_bias_scale``), drawn last so that the other draws stay those of the default."""
    depth = draw(st.integers(1, 3))
    hidden = draw(st.lists(st.integers(1, 4), min_size=depth - 1, max_size=depth - 1))
    input_size = draw(st.integers(1, 9))
    settings = dict(
        context_map_size=draw(st.integers(0, 4)),
        num_classes=draw(st.sampled_from([2, 3, 4])),
        base_prediction_size=draw(st.one_of(st.none(), st.integers(1, 6))),
        bias=draw(st.booleans()),
        context_bias=draw(st.booleans()),
        pred_clipping=draw(st.sampled_from([1e-3, 0.02, 0.2])),
        weight_clipping=draw(st.sampled_from([0.3, 1.0, 5.0])),
        dtype=dtype,
    )
    seed = draw(st.integers(0, 2**31 - 1))
    if hyperplane_options:
        settings["hyperplane_normalize"] = draw(st.booleans())
        if settings["context_bias"]:
            settings["hyperplane_bias_scale"] = draw(st.sampled_from([0.0, 0.25, 1.0, 3.0]))
    return Case(make_config([*hidden, 1], input_size, **settings), seed)


def reference_state(case: Case, *, random_weights: bool = True) -> GLNState:
    """The reference's initial state for the case, weights drawn uniformly inside the clip.

    Random weights make every row different, so a row mix-up cannot go unnoticed.
    """
    config = case.config
    state = jax.tree.map(np.asarray, gln_jax.init(jax.random.key(case.seed), config))
    if not random_weights:
        return state
    rng = np.random.default_rng(case.seed)
    clip = config.weight_clipping
    layers = tuple(
        layer._replace(weights=rng.uniform(-clip, clip, layer.weights.shape).astype(config.dtype))
        for layer in state.layers
    )
    return GLNState(layers=layers, step=state.step)


def _planes(state: GLNState) -> tuple[np.ndarray, np.ndarray]:
    """Every hyperplane of the state as float64 ``[P, N]`` and offsets ``[P]``."""
    n = state.layers[0].hyperplanes.shape[-1]
    planes = np.concatenate(
        [np.asarray(layer.hyperplanes, np.float64).reshape(-1, n) for layer in state.layers]
    )
    bias = np.concatenate(
        [np.asarray(layer.hyperplane_bias, np.float64).reshape(-1) for layer in state.layers]
    )
    return planes, bias


def clear_of_hyperplanes(state: GLNState, side_info: np.ndarray, margin: float = MARGIN):
    """``[B]`` bools: whether each example keeps ``margin`` away from every hyperplane.

    The distance is relative to ``1 + sum_i |v_i z_i|``, which bounds the rounding error of
    ``v . z`` in any summation order.
    """
    planes, bias = _planes(state)
    if planes.shape[0] == 0:
        return np.ones(side_info.shape[0], bool)
    z = np.asarray(side_info, np.float64)
    gap = np.abs(z @ planes.T - bias[None, :])
    scale = 1.0 + np.abs(z) @ np.abs(planes).T
    return (gap > margin * scale).all(axis=1)


def clean_examples(
    state: GLNState, rng: np.random.Generator, count: int, *, low=-1.0, high=1.0, dtype="float32"
) -> np.ndarray:
    """``[count, N]`` uniform examples in ``[low, high]``, each clear of every hyperplane."""
    n = state.layers[0].hyperplanes.shape[-1]
    kept = []
    total = 0
    for _ in range(1000):
        candidates = rng.uniform(low, high, (max(2 * count, 16), n)).astype(dtype)
        good = candidates[clear_of_hyperplanes(state, candidates)]
        kept.append(good)
        total += len(good)
        if total >= count:
            return np.concatenate(kept)[:count]
    raise AssertionError("could not draw examples clear of the hyperplanes")


def base_inputs(rng: np.random.Generator, count: int, width: int, dtype="float32"):
    """``[count, width]`` base probabilities, some exactly 0 or 1 (clipped by the model)."""
    inputs = rng.uniform(0.0, 1.0, (count, width))
    edges = rng.random((count, width)) < 0.1
    inputs[edges] = rng.integers(0, 2, int(edges.sum()))
    return inputs.astype(dtype)


def stable_rate(config: GLNConfig, batch_size: int = 1) -> float:
    """The largest learning rate at which no update can amplify a rounding error.

    One update maps a row ``w`` to ``w - lr * (sigmoid(w . x) - y) * x``, whose Jacobian
    ``I - lr * sigmoid' * x x^T`` has the eigenvalue ``1 - lr * sigmoid' * |x|^2`` (times the
    number of examples a batch adds into one row). Keeping ``lr * 1/4 * max|x|^2 * batch <= 1``
    keeps every step non-expanding, so float32 runs differ from the reference by rounding
    alone instead of by rounding amplified over hundreds of steps.
    """
    eps = config.pred_clipping
    largest_logit = float(np.log1p(-eps) - np.log(eps))
    widths = (config.base_prediction_size, *config.layer_sizes[:-1])
    bound = max(width * largest_logit**2 + (1.0 if config.bias else 0.0) for width in widths)
    return 1.0 / (0.25 * bound * batch_size)


class Stream(NamedTuple):
    """A stream of examples drawn with replacement from a small pool (so rows are shared)."""

    inputs: np.ndarray  # [T, K]
    side_info: np.ndarray  # [T, N]
    targets: np.ndarray  # [T] int32
    rates: np.ndarray  # [T], some exactly 0
    mask: np.ndarray  # [T] bools, mostly true


def make_stream(
    case: Case,
    state: GLNState,
    length: int,
    *,
    pool: int | None = None,
    max_rate: float | None = None,
    batch_size: int = 1,
) -> Stream:
    """A reproducible stream of ``length`` clean examples for ``case``; rates up to
    ``max_rate`` (default :func:`stable_rate` for ``batch_size``), some exactly 0."""
    if max_rate is None:
        max_rate = stable_rate(case.config, batch_size)
    config = case.config
    rng = np.random.default_rng([case.seed, length])
    pool = pool or max(2, length // 4)
    side = clean_examples(state, rng, pool, dtype=config.dtype)
    base = base_inputs(rng, pool, config.base_prediction_size, config.dtype)
    pick = rng.integers(0, pool, length)
    rates = max_rate * np.exp(rng.uniform(np.log(1e-2), 0.0, length))
    rates[rng.random(length) < 0.1] = 0.0
    return Stream(
        inputs=base[pick],
        side_info=side[pick],
        targets=rng.integers(0, config.num_classes, length).astype(np.int32),
        rates=rates.astype(config.dtype),
        mask=rng.random(length) > 0.15,
    )


# --------------------------------------------------------------------------- the reference


def _jit(fn):
    return jax.jit(fn, static_argnames=("config",))


REF_CONTEXT = _jit(gln_jax.context_indices)
REF_BATCH_CONTEXT = _jit(gln_jax.batch_context_indices)
REF_APPLY = _jit(gln_jax.apply)
REF_BATCH_APPLY = _jit(gln_jax.batch_apply)
REF_UPDATE = _jit(gln_jax.update)
REF_BATCH_UPDATE = _jit(gln_jax.batch_update)
REF_SCAN_UPDATE = _jit(gln_jax.scan_update)
REF_SCAN_BATCH_UPDATE = _jit(gln_jax.scan_batch_update)


# --------------------------------------------------------------------------- comparisons


def tolerance(dtype: str) -> dict:
    """``assert_allclose`` tolerances: 1e-12 in float64 (the maths), float32 rounding else."""
    if np.dtype(dtype) == np.float64:
        return {"rtol": 1e-12, "atol": 1e-12}
    return {"rtol": 2e-5, "atol": 2e-6}


#: Float32 slack of one step checked without a float64 truth: a neuron's sum ``w . x`` of
#: terms up to ``5 * 6.9`` that cancel to about zero carries ~1e-5 of rounding in any order.
ONE_STEP_FLOAT32 = {"rtol": 1e-4, "atol": 2e-5}


def assert_close(actual, expected, dtype: str, what: str, *, truth=None, loose=False) -> None:
    """``actual`` of exactly ``dtype`` and within tolerance of ``expected``.

    Args:
        actual: the port's values.
        expected: the reference's values in the same dtype.
        dtype: the config's dtype.
        what: named in the failure message.
        truth: the reference computed in float64 from the same (widened) data, for a float32
            comparison: the allowed difference grows by four times the reference's own
            rounding error ``|expected - truth|``, which is large exactly where a step is
            ill-conditioned (cancelling sums), and tiny elsewhere.
        loose: use :data:`ONE_STEP_FLOAT32` (float32 without a truth).
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype}, expected {dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    tol = tolerance(dtype)
    if loose and np.dtype(dtype) == np.float32:
        tol = ONE_STEP_FLOAT32
    allowed = tol["atol"] + tol["rtol"] * np.abs(expected.astype(np.float64))
    if truth is not None:
        allowed = allowed + 4.0 * np.abs(expected.astype(np.float64) - np.asarray(truth))
    error = np.abs(actual.astype(np.float64) - expected)
    bad = error > allowed
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} values off, first at {where}: "
            f"{actual[where]!r} vs {expected[where]!r} (allowed {allowed[where]:.3g}, "
            f"max error {error.max():.3g})"
        )


def assert_states_close(
    actual: GLNState, expected: GLNState, dtype: str, *, truth=None, loose=False
) -> None:
    """Weights within tolerance (see :func:`assert_close`), gating and step exactly equal."""
    assert int(actual.step) == int(expected.step), "step"
    assert np.asarray(actual.step).dtype == np.int32, "step dtype"
    truths = [None] * len(expected.layers) if truth is None else [t.weights for t in truth.layers]
    for i, (a, e, t) in enumerate(zip(actual.layers, expected.layers, truths, strict=True)):
        assert_close(a.weights, e.weights, dtype, f"layer {i} weights", truth=t, loose=loose)
        for field in ("hyperplanes", "hyperplane_bias"):
            np.testing.assert_array_equal(
                getattr(a, field), getattr(e, field), err_msg=f"layer {i} {field}"
            )


def widened(tree):
    """Every float32 array of a tree (a state, a stream) as float64, exactly."""

    def widen(leaf):
        leaf = np.asarray(leaf)
        return leaf.astype(np.float64) if leaf.dtype == np.float32 else leaf

    return jax.tree.map(widen, tree)


__all__ = [
    "BACKENDS",
    "BY_NAME",
    "MARGIN",
    "PORTS",
    "REFERENCE",
    "SESSION_SEED",
    "Backend",
    "Case",
    "LayerState",
    "Stream",
    "assert_close",
    "assert_states_close",
    "base_inputs",
    "cases",
    "clean_examples",
    "clear_of_hyperplanes",
    "make_stream",
    "stable_rate",
    "params",
    "reference_state",
    "tolerance",
    "widened",
]
