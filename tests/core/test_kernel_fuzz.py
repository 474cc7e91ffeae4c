"""Property-based fuzz of the fused CPU kernel through the public API (Hypothesis).

What is fuzzed, each through ``gln_jax.GLN("jax", ...)``, :func:`gln_jax.fit_stream` or
:func:`gln_jax.ensemble.fit_ensemble`, never the kernel's own entry points:

- shapes at the edges: example and side-information widths from 1 to 2,000, context maps of
  0 to 10 hyperplanes, 2 to 1,000 classes (1 is refused), networks ``[1]`` to ``[3, 7, 1]``,
  batches of 1, 3, 31, 33 and 1,000 examples, streams of 0, 1, 7, 8, 9 and 4,097 examples,
  in float32 and float64;
- NaN, inf, subnormal, huge and largest-finite values in examples and side information: the
  facade refuses what its validation promises to refuse (a ``ValueError`` naming the argument,
  the model unchanged) and answers the rest with probabilities inside the clip;
- tiny (subnormal included) and huge ``weight_clipping``, schedules that return 0 on some
  steps (such a step changes nothing but the step count), ensembles, and Python threads on
  one model and on separate models;
- the kernel against the pure-JAX route (``GLN_JAX_KERNEL=0``): both must agree.

Every test uses a fixed Hypothesis seed (``derandomize=True``, no example database) and a
small budget, so a run is reproducible and short; ``@example`` pins the edge cases above, the
generated examples add combinations of them. Data come from NumPy generators seeded by the
drawn ``seed`` (continuous values), so no example sits on a gating hyperplane.

Why the tolerances hold: the two routes compute the same updates with the float operations in
another order, so they differ by rounding, amplified along a stream by the online update map
(see "Routes and rounding" in docs/semantics.md). At rate 1e-4 and below the map barely
amplifies: the semantics page measured at most 2.8e-15 (float64) and 1.2e-7 (float32) between
the routes over 2,000 MNIST steps. The float64 comparisons here allow 1e-10: 35,000 times that
measurement, so no machine's rounding reaches it, and still 600 times below one float32
rounding of a probability near 1 (6e-8), so a kernel that rounds through float32, reads a
wrong row or misses a clip fails. Float32 comparisons use the port harness's float32 rule
(2e-5 relative, 2e-6 absolute), which tests/core/test_kernel.py applies to these routes at
rate 0.1. (Written on a 2-core x86-64 machine, the largest differences these tests saw were
2.2e-15 in float64 and 1.8e-7 in float32, 2% of its allowance.) Comparisons within one route
are bit for bit: an ensemble member against its own ``fit_stream`` where both run in the
kernel (the semantics page), threads against the same calls made one after another, a model
against a replay of its calls. A vmapped XLA member against XLA's own ``fit_stream`` is
compared within the route tolerance: XLA may fuse the two differently.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from typing import NamedTuple

import jax
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import gln_jax
from gln_jax import GLN, ensemble, make_config
from gln_jax.api import validation
from gln_jax.core import kernel
from gln_jax.core.kernel import library
from gln_jax.core.types import largest_finite, max_logit

#: The learning rate of every comparison between the routes (see the module docstring).
RATE = 1e-4
#: Largest difference allowed between the routes in float64 (see the module docstring).
ATOL_FLOAT64 = 1e-10
#: The port harness's float32 rule, relative and absolute (see the module docstring).
RTOL_FLOAT32, ATOL_FLOAT32 = 2e-5, 2e-6
#: Most weights plus hyperplane entries of a drawn network (a few MiB): keeps XLA's dense
#: scoring and the sanitizer run (tests/core/run_kernel_sanitizers.sh, several times slower)
#: cheap.
BUDGET = 300_000


def fuzz(max_examples: int):
    """Hypothesis settings of this file: a fixed seed, no database, a small budget.

    The fixtures (``kernel_on``, ``x64``, ``compiled``) hold for a whole test, not per example,
    hence the function-scoped fixture check is off.
    """
    return settings(
        derandomize=True,
        database=None,
        deadline=None,
        max_examples=max_examples,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


@pytest.fixture(autouse=True)
def kernel_on(monkeypatch):
    """Every test starts with the kernel switched on (whatever the caller's environment)."""
    monkeypatch.delenv(library.SWITCH, raising=False)


@contextlib.contextmanager
def switched(on: bool):
    """The kernel on (the default) or off with ``GLN_JAX_KERNEL=0`` inside the block."""
    with pytest.MonkeyPatch.context() as patch:
        if on:
            patch.delenv(library.SWITCH, raising=False)
        else:
            patch.setenv(library.SWITCH, "0")
        yield


# -- networks and data ---------------------------------------------------------------------


class Net(NamedTuple):
    """A drawn network: layer sizes, widths ``P`` and ``N``, ``H``, classes, biases."""

    sizes: tuple[int, ...]
    inputs: int  # P: base predictions (the facade's input_size)
    side: int  # N: side information
    context_map_size: int
    classes: int
    bias: bool = True
    context_bias: bool = True

    def config(self, dtype: str, **options):
        return make_config(
            list(self.sizes),
            self.side,
            context_map_size=self.context_map_size,
            num_classes=self.classes,
            base_prediction_size=self.inputs,
            bias=self.bias,
            context_bias=self.context_bias,
            dtype=dtype,
            **options,
        )

    def model(self, dtype: str, *, seed: int = 0, learning_rate=RATE, **options) -> GLN:
        return GLN(
            "jax",
            list(self.sizes),
            self.inputs,
            context_map_size=self.context_map_size,
            num_classes=self.classes,
            learning_rate=learning_rate,
            bias=self.bias,
            context_bias=self.context_bias,
            seed=seed,
            dtype=dtype,
            side_info_size=self.side,
            **options,
        )


def cells(sizes, inputs: int, side: int, context_map_size: int, classes: int) -> int:
    """Weights plus hyperplane entries of a network (bias inputs counted)."""
    models = 1 if classes == 2 else classes
    widths = (inputs, *sizes[:-1])
    weights = sum(k * 2**context_map_size * (i + 1) for k, i in zip(sizes, widths, strict=True))
    return models * (weights + sum(sizes) * context_map_size * side)


WIDTHS = st.one_of(st.just(1), st.integers(2, 24), st.just(2000))


@st.composite
def networks(draw, *, classes=(2, 3, 10, 1000), layers=((1,), (3, 7, 1), (2, 1))):
    """Networks at the edges of every shape, within :data:`BUDGET` (1,000 classes only on a
    one-neuron network with a few inputs; a wide one loses hyperplanes first, then classes)."""
    num_classes = draw(st.sampled_from(classes))
    if num_classes == 1000:
        sizes, inputs, side = (1,), draw(st.integers(1, 3)), draw(st.integers(1, 3))
        context_map_size = draw(st.integers(0, 2))
    else:
        sizes, inputs, side = draw(st.sampled_from(layers)), draw(WIDTHS), draw(WIDTHS)
        context_map_size = draw(st.integers(0, 10))
        while context_map_size and cells(sizes, inputs, side, context_map_size, num_classes) > (
            BUDGET
        ):
            context_map_size -= 1
        if cells(sizes, inputs, side, context_map_size, num_classes) > BUDGET:
            num_classes = 2
    bias, context_bias = draw(st.booleans()), draw(st.booleans())
    return Net(sizes, inputs, side, context_map_size, num_classes, bias, context_bias)


def stream(net: Net, length: int, seed: int, dtype: str):
    """``length`` examples of ``net``: inputs in [0, 1], signed side information with
    image-like zeros (the kernel's gating is sparse over them), labels, rates up to RATE."""
    rng = np.random.default_rng(seed)
    inputs = rng.random((length, net.inputs)).astype(dtype)
    side = rng.standard_normal((length, net.side))
    side[rng.random(side.shape) < 0.3] = 0.0
    targets = rng.integers(0, net.classes, length)
    rates = rng.uniform(0.0, RATE, length).astype(dtype)
    return inputs, side.astype(dtype), targets, rates


def weights(state) -> list[np.ndarray]:
    return [np.asarray(layer.weights) for layer in state.layers]


def assert_close(got, want, dtype: str, what: str) -> None:
    """The routes agree within the tolerance of ``dtype`` (see the module docstring)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    if dtype == "float64":
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL_FLOAT64, err_msg=what)
    else:
        np.testing.assert_allclose(got, want, rtol=RTOL_FLOAT32, atol=ATOL_FLOAT32, err_msg=what)


def assert_states_close(got, want, dtype: str) -> None:
    np.testing.assert_array_equal(np.asarray(got.step), np.asarray(want.step))
    for i, (a, b) in enumerate(zip(got.layers, want.layers, strict=True)):
        assert_close(a.weights, b.weights, dtype, f"layer {i} weights")
        np.testing.assert_array_equal(a.hyperplanes, b.hyperplanes)  # the gates never learn
        np.testing.assert_array_equal(a.hyperplane_bias, b.hyperplane_bias)


def assert_same_state(got, want) -> None:
    """Bit for bit: every leaf and the step count."""
    np.testing.assert_array_equal(np.asarray(got.step), np.asarray(want.step))
    for a, b in zip(got.layers, want.layers, strict=True):
        for leaf in ("weights", "hyperplanes", "hyperplane_bias"):
            np.testing.assert_array_equal(np.asarray(getattr(a, leaf)), getattr(b, leaf))


def assert_in_clip(p, config) -> None:
    """Finite probabilities inside ``[eps, 1 - eps]`` as the dtype rounds them (the clip of
    every neuron's output, docs/semantics.md)."""
    p = np.asarray(p)
    assert p.dtype == np.dtype(config.dtype)
    low = np.asarray(config.pred_clipping, config.dtype)
    high = np.asarray(1.0 - config.pred_clipping, config.dtype)
    assert np.all(np.isfinite(p)), "a probability is not finite"
    assert np.all((p >= low) & (p <= high)), (p.min(), p.max())


def assert_weights_in_clip(state, config) -> None:
    bound = np.asarray(config.weight_clipping, config.dtype)
    for w in weights(state):
        assert np.all(np.isfinite(w)) and np.all(np.abs(w) <= bound), np.abs(w).max()


# -- streams: fit_stream by the kernel and by XLA ------------------------------------------


@fuzz(max_examples=3)
@given(
    net=networks(),
    length=st.sampled_from([0, 1, 7, 8, 9, 33]),
    batch=st.sampled_from([1, 3, 31, 33]),
    dtype=st.sampled_from(["float64", "float32"]),
    seed=st.integers(0, 2**16),
)
@example(net=Net((1,), 1, 1, 0, 2), length=0, batch=1, dtype="float64", seed=0)
@example(net=Net((1,), 1, 1, 1, 2), length=4097, batch=1, dtype="float64", seed=1)
@example(net=Net((3, 7, 1), 2000, 1, 1, 3), length=9, batch=3, dtype="float64", seed=2)
@example(net=Net((1,), 1, 2000, 10, 2, False), length=8, batch=1, dtype="float64", seed=3)
@example(net=Net((1,), 3, 2, 2, 1000), length=7, batch=1, dtype="float64", seed=4)
@example(net=Net((3, 7, 1), 5, 7, 4, 10), length=33, batch=31, dtype="float32", seed=5)
def test_fit_stream_kernel_and_xla_agree(compiled, net, length, batch, dtype, seed):
    """``fit_stream`` with the kernel on and with ``GLN_JAX_KERNEL=0``: the same predictions
    before every update and the same weights, within the tolerance of the dtype; the caller's
    state is left intact; every prediction lies inside the clip."""
    inputs, side, targets, rates = stream(net, length, seed, dtype)
    with jax.enable_x64(dtype == "float64"):
        config = net.config(dtype)
        state = gln_jax.init(jax.random.key(seed), config)
        start = weights(state)
        runs = {}
        for on in (True, False):
            with switched(on):
                runs[on] = gln_jax.fit_stream(
                    state, inputs, side, targets, rates, config=config, batch_size=batch
                )
        (got, p), (want, want_p) = runs[True], runs[False]
        for run_p in (p, want_p):
            assert run_p.shape == (length, config.num_models)
            assert_in_clip(run_p, config)
        assert_close(p, want_p, dtype, "predictions before each update")
        assert_states_close(got, want, dtype)
        assert int(got.step) == length
        assert_weights_in_clip(got, config)
        for before, now in zip(start, weights(state), strict=True):  # the caller's state
            np.testing.assert_array_equal(now, before)


def test_one_class_is_refused():
    """The API's smallest class count is 2 (one binary model); 1 is refused by name."""
    with pytest.raises(ValueError, match="num_classes must be at least 2"):
        make_config([1], 1, num_classes=1)
    with pytest.raises(ValueError, match="num_classes must be at least 2"):
        GLN("jax", [1], 1, num_classes=1)


# -- the facade: batch prediction, batch updates and fit, by the kernel and by XLA ---------


def facade_run(net: Net, dtype: str, seed: int, batch: int, length: int, fit_batch: int):
    """A facade's calls: batch prediction, a batch update, ``fit``, prediction again."""
    x, s, y, _ = stream(net, batch, seed, dtype)
    fx, fs, fy, _ = stream(net, length, seed + 1, dtype)
    model = net.model(dtype, seed=seed)
    before = model.predict(x, return_probs=True, side_info=s)
    learned = model.predict(x, target=y, return_probs=True, side_info=s)
    classes = model.fit(fx, fy, batch_size=fit_batch, side_info=fs)
    after = model.predict(x, return_probs=True, side_info=s)
    return model, before, learned, classes, after


@fuzz(max_examples=2)
@given(
    net=networks(),
    batch=st.sampled_from([1, 3, 31, 33, 1000]),
    length=st.sampled_from([0, 1, 7, 8, 9]),
    fit_batch=st.sampled_from([1, 3, 33]),
    dtype=st.sampled_from(["float64", "float32"]),
    seed=st.integers(0, 2**16),
)
@example(net=Net((1,), 2, 3, 2, 1000), batch=1000, length=7, fit_batch=3, dtype="float64", seed=1)
@example(
    net=Net((3, 7, 1), 9, 2000, 1, 3), batch=33, length=9, fit_batch=1, dtype="float64", seed=2
)
@example(net=Net((2, 1), 2000, 4, 5, 2), batch=31, length=8, fit_batch=33, dtype="float32", seed=3)
def test_facade_calls_kernel_and_xla_agree(compiled, net, batch, length, fit_batch, dtype, seed):
    """Batch prediction (the kernel's inference, threaded from 16 examples), a batch update
    with targets, ``fit`` and prediction again: the same probabilities and state with the kernel
    on and off; a batch with targets is predicted with the weights from before it."""
    with jax.enable_x64(dtype == "float64"):
        runs = {}
        for on in (True, False):
            with switched(on):
                runs[on] = facade_run(net, dtype, seed, batch, length, fit_batch)
        (model, before, learned, classes, after), (twin, *want) = runs[True], runs[False]
        config = model.config
        shape = (batch,) if net.classes == 2 else (batch, net.classes)
        for probs in (before, learned, after, *want[:2], want[3]):
            assert probs.shape == shape
            assert_in_clip(probs, config)
        assert classes.shape == (length,)
        # predictions made with the weights from before the batch (inference and learning
        # compute them by other code, hence rounding)
        assert_close(learned, before, dtype, "a batch update's predictions")
        for got, expected, what in zip(
            (before, learned, after),
            (want[0], want[1], want[3]),
            ("batch prediction", "batch update", "prediction after fit"),
            strict=True,
        ):
            assert_close(got, expected, dtype, what)
        assert model.step == twin.step == batch + length
        assert_states_close(model.reference_state(), twin.reference_state(), dtype)


# -- hostile values through the facade -----------------------------------------------------

HOSTILE = [
    "nan",
    "inf",
    "-inf",
    "largest",  # the dtype's largest finite value
    "beyond the limit",  # twice the side-information limit of the model's gates
    "within the limit",  # half of it
    "subnormal",  # the dtype's smallest subnormal
    "-0.0",
    "1e300 in float64",  # a float64 array: inf once converted to a float32 model's dtype
]


def hostile_value(kind: str, dtype: str, limit: float):
    """``(array dtype, value)`` for one kind of :data:`HOSTILE`."""
    info = np.finfo(dtype)
    largest = float(info.max)
    values = {
        "nan": math.nan,
        "inf": math.inf,
        "-inf": -math.inf,
        "largest": largest,
        "beyond the limit": min(2 * limit, largest),
        "within the limit": min(limit, largest) / 2,
        "subnormal": float(info.smallest_subnormal),
        "-0.0": -0.0,
        "1e300 in float64": 1e300,
    }
    return ("float64" if kind == "1e300 in float64" else dtype), values[kind]


def expected_refusal(name: str, value: float, dtype: str, gated: bool, limit: float):
    """What the facade's validation promises (gln_jax/api/validation.py): the pattern of the
    ``ValueError`` it raises, or None when it accepts the call."""
    with np.errstate(over="ignore"):
        typed = float(np.asarray(value, np.float64).astype(dtype))
    if not math.isfinite(typed):
        return f"{name} contains NaN or inf \\(in {dtype}\\)"
    if gated and abs(typed) > limit:
        return f"{name} has an entry of magnitude .* could overflow {dtype}"
    return None


@fuzz(max_examples=3)
@given(
    kind=st.sampled_from(HOSTILE),
    where=st.sampled_from(["input", "side_info"]),
    own_side_info=st.booleans(),
    call=st.sampled_from(["predict", "predict with targets", "fit"]),
    dtype=st.sampled_from(["float32", "float64"]),
    shape=st.sampled_from([Net((1,), 1, 1, 1, 2), Net((3, 7, 1), 5, 5, 2, 3)]),
    place=st.tuples(st.integers(0, 2), st.integers(0, 4)),
    seed=st.integers(0, 2**16),
)
@example(
    kind="nan",
    where="input",
    own_side_info=False,
    call="predict with targets",
    dtype="float32",
    shape=Net((1,), 1, 1, 1, 2),
    place=(0, 0),
    seed=0,
)
@example(
    kind="inf",
    where="side_info",
    own_side_info=True,
    call="fit",
    dtype="float64",
    shape=Net((3, 7, 1), 5, 5, 2, 3),
    place=(2, 4),
    seed=1,
)
@example(
    kind="beyond the limit",
    where="input",
    own_side_info=False,
    call="fit",
    dtype="float32",
    shape=Net((3, 7, 1), 5, 5, 2, 3),
    place=(1, 2),
    seed=2,
)
@example(
    kind="within the limit",
    where="side_info",
    own_side_info=True,
    call="predict with targets",
    dtype="float32",
    shape=Net((3, 7, 1), 5, 5, 2, 3),
    place=(1, 1),
    seed=3,
)
@example(
    kind="subnormal",
    where="side_info",
    own_side_info=True,
    call="predict",
    dtype="float64",
    shape=Net((1,), 1, 1, 1, 2),
    place=(0, 0),
    seed=4,
)
@example(
    kind="1e300 in float64",
    where="input",
    own_side_info=True,
    call="predict with targets",
    dtype="float32",
    shape=Net((1,), 1, 1, 1, 2),
    place=(2, 0),
    seed=5,
)
@example(
    kind="largest",
    where="input",
    own_side_info=True,
    call="fit",
    dtype="float64",
    shape=Net((3, 7, 1), 5, 5, 2, 3),
    place=(0, 3),
    seed=6,
)
def test_hostile_values_are_refused_or_answered_inside_the_clip(
    compiled, kind, where, own_side_info, call, dtype, shape, place, seed
):
    """A value the facade's validation refuses raises a ``ValueError`` naming the argument and
    the problem, and leaves the model exactly as it was (it then learns as a model that never
    saw the call); any other value is answered with probabilities inside the clip, the same with
    the kernel on and off. Examples outside [0, 1] warn once (they are clipped base
    predictions)."""
    if where == "side_info" and not own_side_info:
        where = "input"  # the model's gates see its examples: they are the side information
    net = shape._replace(side=shape.side + 1) if own_side_info else shape
    x, s, y, _ = stream(net, 3, seed, dtype)
    first = stream(net, 1, seed + 1, dtype)  # a clean first example

    def build_model():
        m = net.model(dtype, seed=seed, learning_rate=0.05)
        m.predict(first[0], target=first[2], side_info=first[1] if own_side_info else None)
        return m

    with jax.enable_x64(dtype == "float64"):
        models = {}
        for on in (True, False):
            with switched(on):
                models[on] = build_model()  # the kernel (or XLA) is chosen at the first call
        model = models[True]
        state = model.reference_state()
        limit = validation.side_info_limit(
            model.config,
            [layer.hyperplanes for layer in state.layers],
            [layer.hyperplane_bias for layer in state.layers],
        )
        array_dtype, value = hostile_value(kind, dtype, limit)
        x, s = x.astype(array_dtype), s.astype(array_dtype)
        target = x if where == "input" else s
        target[place[0], min(place[1], target.shape[1] - 1)] = value
        gated = where == "side_info" or not own_side_info
        refusal = expected_refusal(where, value, dtype, gated, limit)
        side_info = s if own_side_info else None

        def run(m):
            if call == "predict":
                return m.predict(x, return_probs=True, side_info=side_info)
            if call == "predict with targets":
                return m.predict(x, target=y, return_probs=True, side_info=side_info)
            m.fit(x, y, side_info=side_info)
            return m.predict(x, return_probs=True, side_info=side_info)

        if refusal is not None:
            for m in models.values():
                before, step = m.reference_state(), m.step
                with pytest.raises(ValueError, match=refusal):
                    run(m)
                assert_same_state(m.reference_state(), before)
                assert m.step == step
            # and it learns as a twin that never saw the refused call
            clean = stream(net, 2, seed + 2, dtype)
            twin = build_model()
            side = clean[1] if own_side_info else None
            got = model.predict(clean[0], target=clean[2], return_probs=True, side_info=side)
            want = twin.predict(clean[0], target=clean[2], return_probs=True, side_info=side)
            np.testing.assert_array_equal(got, want)
            assert_same_state(model.reference_state(), twin.reference_state())
            return
        outside = not (0.0 <= float(np.asarray(x, dtype).min()) <= 1.0) or not (
            0.0 <= float(np.asarray(x, dtype).max()) <= 1.0
        )
        answers = {}
        for on, m in models.items():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                answers[on] = run(m)
            messages = [str(w.message) for w in caught]
            assert all("outside [0, 1]" in text for text in messages), messages
            assert len(messages) == int(outside), messages  # once: this model's first range
            assert_in_clip(answers[on], m.config)
            assert_weights_in_clip(m.reference_state(), m.config)
        assert_close(answers[True], answers[False], dtype, f"{kind} in {where}")
        assert_states_close(model.reference_state(), models[False].reference_state(), dtype)


@fuzz(max_examples=3)
@given(
    kind=st.sampled_from([k for k in HOSTILE if k != "1e300 in float64"]),
    where=st.sampled_from(["inputs", "side_info"]),
    dtype=st.sampled_from(["float32", "float64"]),
    shape=st.sampled_from([Net((1,), 1, 1, 1, 2), Net((3, 7, 1), 5, 5, 2, 3)]),
    place=st.tuples(st.integers(0, 8), st.integers(0, 4)),
    seed=st.integers(0, 2**16),
)
@example(
    kind="nan",
    where="side_info",
    dtype="float32",
    shape=Net((3, 7, 1), 5, 5, 2, 3),
    place=(0, 2),
    seed=0,
)
@example(
    kind="-inf", where="inputs", dtype="float64", shape=Net((1,), 1, 1, 1, 2), place=(8, 0), seed=1
)
@example(
    kind="largest",
    where="side_info",
    dtype="float32",
    shape=Net((1,), 1, 1, 1, 2),
    place=(3, 0),
    seed=2,
)
@example(
    kind="subnormal",
    where="inputs",
    dtype="float64",
    shape=Net((3, 7, 1), 5, 5, 2, 3),
    place=(4, 4),
    seed=3,
)
def test_fit_stream_answers_hostile_side_information_and_clipped_inputs(
    compiled, kind, where, dtype, shape, place, seed
):
    """``fit_stream`` checks no values but the labels and rates (gln_jax/core/checks.py): the
    gates compare whatever side information they get (a NaN projection is a 0 bit) and the
    inputs are clipped into ``[eps, 1 - eps]``, so every value but a NaN input is learned from
    with probabilities inside the clip and weights inside theirs (a refusal naming the argument
    would keep that promise too). The routes agree wherever a projection cannot overflow in one
    summation order and not in another, that is up to the facade's side-information limit and
    at NaN and inf. (NaN inputs: :func:`test_fit_stream_refuses_nan_inputs`.)"""
    if kind == "nan" and where == "inputs":
        where = "side_info"
    inputs, side, targets, rates = stream(shape, 9, seed, dtype)
    with jax.enable_x64(dtype == "float64"):
        config = shape.config(dtype)
        state = gln_jax.init(jax.random.key(seed), config)
        layers = state.layers
        limit = validation.side_info_limit(
            config, [x.hyperplanes for x in layers], [x.hyperplane_bias for x in layers]
        )
        _, value = hostile_value(kind, dtype, limit)
        target = inputs if where == "inputs" else side
        target[place[0], min(place[1], target.shape[1] - 1)] = value
        runs = {}
        for on in (True, False):
            with switched(on):
                try:
                    runs[on] = gln_jax.fit_stream(
                        state, inputs, side, targets, rates, config=config
                    )
                except ValueError as err:
                    assert where in str(err), str(err)
                    continue
                assert_in_clip(runs[on][1], config)
                assert_weights_in_clip(runs[on][0], config)
        assert len(runs) in (0, 2), "one route refused what the other took"
        comparable = where == "inputs" or not math.isfinite(value) or abs(value) <= limit
        if runs and comparable:
            assert_close(runs[True][1], runs[False][1], dtype, f"{kind} in {where}")
            assert_states_close(runs[True][0], runs[False][0], dtype)


def test_fit_stream_refuses_nan_inputs(compiled):
    """A NaN input is refused by name before anything is learned, as a NaN rate is."""
    config = make_config([1], 2, context_map_size=1)
    state = gln_jax.init(jax.random.key(0), config)
    inputs = np.full((3, 2), 0.5, np.float32)
    inputs[1, 0] = np.nan
    with pytest.raises(ValueError, match="inputs"):
        gln_jax.fit_stream(
            state, inputs, np.zeros_like(inputs), np.array([1, 0, 1]), 0.1, config=config
        )


# -- weight clipping, tiny to huge ---------------------------------------------------------


@fuzz(max_examples=1)
@given(
    net=networks(classes=(2, 3, 10), layers=((1,), (3, 7, 1))),
    scale=st.sampled_from(["tiny", "smallest normal", "moderate", "half the largest", "twice"]),
    tiny=st.floats(1e-30, 1e-3),
    dtype=st.sampled_from(["float32", "float64"]),
    rate=st.sampled_from([1.0, 30.0, 1e3]),
    seed=st.integers(0, 2**16),
)
@example(
    net=Net((3, 7, 1), 4, 3, 2, 3),
    scale="smallest normal",
    tiny=1e-30,
    dtype="float64",
    rate=30.0,
    seed=0,
)
@example(
    net=Net((1,), 2000, 2, 1, 2),
    scale="half the largest",
    tiny=1e-30,
    dtype="float32",
    rate=1e3,
    seed=1,
)
@example(
    net=Net((3, 7, 1), 2, 2, 0, 10),
    scale="twice",
    tiny=1e-30,
    dtype="float64",
    rate=1.0,
    seed=2,
)
@example(net=Net((1,), 3, 3, 3, 2), scale="tiny", tiny=1e-25, dtype="float32", rate=30.0, seed=3)
def test_weight_clipping_from_tiny_to_huge(compiled, net, scale, tiny, dtype, rate, seed):
    """A ``weight_clipping`` whose largest weighted sum (``weight_clipping * inputs *
    max_logit``, make_config's rule) overflows the dtype is refused by name; any other, from
    the smallest normal number up, trains with weights inside the clip and probabilities
    inside theirs (at high rates, where the clip fires), the routes agreeing at RATE."""
    probe = net.config(dtype)
    largest = largest_finite(dtype) / (max(probe.layer_input_sizes()) * max_logit(probe))
    clip = {
        "tiny": tiny,
        "smallest normal": float(np.finfo(dtype).tiny),
        "moderate": 5.0,
        "half the largest": largest / 2,
        "twice": largest * 2,
    }[scale]
    with jax.enable_x64(dtype == "float64"):
        if scale == "twice":
            with pytest.raises(ValueError, match="weight_clipping=.* is too large for"):
                net.config(dtype, weight_clipping=clip)
            with pytest.raises(ValueError, match="weight_clipping"):
                net.model(dtype, weight_clipping=clip)
            return
        config = net.config(dtype, weight_clipping=clip)
        state = gln_jax.init(jax.random.key(seed), config)
        inputs, side, targets, rates = stream(net, 9, seed, dtype)
        runs = {}
        for on in (True, False):
            with switched(on):
                runs[on] = gln_jax.fit_stream(state, inputs, side, targets, rates, config=config)
                fast, p = gln_jax.fit_stream(state, inputs, side, targets, rate, config=config)
                assert_in_clip(p, config)
                assert_weights_in_clip(fast, config)
                assert int(fast.step) == 9
        assert_close(runs[True][1], runs[False][1], dtype, "predictions")
        assert_states_close(runs[True][0], runs[False][0], dtype)
        assert_weights_in_clip(runs[True][0], config)


def serves_or_refuses_a_subnormal_clip(dtype: str, clip: float):
    """A subnormal ``weight_clipping`` is either refused at construction (a ``ValueError``
    naming it) or served by the kernel as by XLA (which flushes subnormals to zero on CPU)."""
    with jax.enable_x64(dtype == "float64"):
        try:
            make_config([1], 1, context_map_size=0, dtype=dtype, weight_clipping=clip)
        except ValueError as err:
            assert "weight_clipping" in str(err)
            return
        x = np.array([[0.7], [0.2], [0.9]], dtype)
        y = np.array([1, 0, 1])
        answers = {}
        for on in (True, False):
            with switched(on):
                model = GLN("jax", [1], 1, context_map_size=0, dtype=dtype, weight_clipping=clip)
                first = model.predict(x, return_probs=True)
                learned = model.predict(x, target=y, return_probs=True)
                model.fit(x, y)
                answers[on] = (first, learned, model.reference_state())
                assert_in_clip(first, model.config)
        for got, want in zip(answers[True][:2], answers[False][:2], strict=True):
            np.testing.assert_array_equal(got, want)
        assert_same_state(answers[True][2], answers[False][2])


def test_a_subnormal_float32_weight_clipping_is_refused_or_served(compiled):
    """1e-40 is subnormal in float32 (a normal float64 attribute): served as XLA serves it."""
    serves_or_refuses_a_subnormal_clip("float32", 1e-40)


def test_a_subnormal_float64_weight_clipping_is_refused_or_served(compiled):
    """1e-310 is subnormal in float64: refused at construction, or served as XLA serves it."""
    serves_or_refuses_a_subnormal_clip("float64", 1e-310)


# -- schedules that return 0 on some steps -------------------------------------------------


def zero_schedule(kind: str, zeros: frozenset[int], rate: float):
    """A schedule that returns 0 at the steps in ``zeros`` (a callable of NumPy steps) or on
    ``[min(zeros), max(zeros)]`` (optax's ``join_schedules``), else ``rate``."""
    if kind == "optax":
        first, last = min(zeros, default=0), max(zeros, default=-1) + 1
        return optax.join_schedules(
            [optax.constant_schedule(rate), optax.constant_schedule(0.0)]
            + [optax.constant_schedule(rate)],
            [first, max(first, last)],
        )
    chosen = np.array(sorted(zeros), np.int64)
    return lambda step: np.where(np.isin(step, chosen), 0.0, rate)


@fuzz(max_examples=1)
@given(
    net=networks(classes=(2, 3, 10), layers=((1,), (3, 7, 1))),
    kind=st.sampled_from(["callable", "optax"]),
    zeros=st.frozensets(st.integers(0, 8), max_size=6),
    dtype=st.sampled_from(["float32", "float64"]),
    seed=st.integers(0, 2**16),
)
@example(
    net=Net((3, 7, 1), 3, 4, 2, 3),
    kind="callable",
    zeros=frozenset({0, 2, 3, 8}),
    dtype="float64",
    seed=0,
)
@example(net=Net((1,), 1, 1, 0, 2), kind="optax", zeros=frozenset({4, 6}), dtype="float32", seed=1)
def test_steps_at_rate_zero_change_nothing_but_the_step(compiled, net, kind, zeros, dtype, seed):
    """Per-call online learning with a schedule that returns 0 on some steps: those steps leave
    every weight as it was (and count), the others move the weights; the whole run equals
    ``fit_stream`` of the examples at non-zero rates alone, and ``fit_stream`` with the
    schedule equals that too."""
    length, rate = 9, 0.01
    schedule = zero_schedule(kind, zeros, rate)
    inputs, side, targets, _ = stream(net, length, seed, dtype)
    with jax.enable_x64(dtype == "float64"):
        rates = np.asarray(schedule(np.arange(length)), dtype)  # as the facade evaluates it
        keep = rates > 0
        model = net.model(dtype, seed=seed, learning_rate=schedule)
        for t in range(length):
            before = model.reference_state()
            model.predict(inputs[t], target=targets[t : t + 1], side_info=side[t : t + 1])
            after = model.reference_state()
            assert int(after.step) == model.step == t + 1
            moved = any(
                not np.array_equal(a.weights, b.weights)
                for a, b in zip(after.layers, before.layers, strict=True)
            )
            assert moved == bool(keep[t]), (t, rates[t])
        config = model.config
        state = gln_jax.init(jax.random.key(seed), config)
        alone, _ = gln_jax.fit_stream(
            state, inputs[keep], side[keep], targets[keep], rates[keep], config=config
        )
        scheduled, _ = gln_jax.fit_stream(state, inputs, side, targets, schedule, config=config)
        assert int(scheduled.step) == length and int(alone.step) == int(keep.sum())
        final = model.reference_state()
        for got in (final, scheduled):
            for i, (a, b) in enumerate(zip(got.layers, alone.layers, strict=True)):
                assert_close(a.weights, b.weights, dtype, f"layer {i}")


# -- ensembles -----------------------------------------------------------------------------


@fuzz(max_examples=1)
@given(
    net=networks(classes=(2, 3, 10), layers=((1,), (3, 7, 1))),
    members=st.integers(1, 4),
    sweep=st.booleans(),
    idle_member=st.booleans(),
    length=st.sampled_from([0, 1, 7, 8, 9]),
    batch=st.sampled_from([1, 3]),
    dtype=st.sampled_from(["float32", "float64"]),
    seed=st.integers(0, 2**16),
)
@example(
    net=Net((3, 7, 1), 4, 5, 3, 3),
    members=3,
    sweep=False,
    idle_member=True,
    length=9,
    batch=1,
    dtype="float64",
    seed=0,
)
@example(
    net=Net((1,), 1, 2000, 2, 10),
    members=2,
    sweep=True,
    idle_member=False,
    length=8,
    batch=3,
    dtype="float32",
    seed=1,
)
@example(
    net=Net((1,), 2, 2, 1, 2),
    members=4,
    sweep=False,
    idle_member=True,
    length=0,
    batch=1,
    dtype="float64",
    seed=2,
)
def test_ensembles_equal_their_members_and_the_xla_route(
    compiled, net, members, sweep, idle_member, length, batch, dtype, seed
):
    """``fit_ensemble`` with one rate vector per member (member 0 at rate 0 when idle): each
    member equals ``fit_stream`` of it alone (bit for bit where both run in the kernel, as the
    semantics page says), an idle member keeps its weights, and the kernel's ensemble agrees
    with ``GLN_JAX_KERNEL=0``'s."""
    inputs, side, targets, _ = stream(net, length, seed, dtype)
    rng = np.random.default_rng(seed + 7)
    rates = rng.uniform(0.0, RATE, (members, length)).astype(dtype)
    if idle_member:
        rates[0] = 0.0
    with jax.enable_x64(dtype == "float64"):
        config = net.config(dtype)
        if sweep:
            states = ensemble.init_sweep(jax.random.key(seed), config, members)
        else:
            states = ensemble.init_ensemble(jax.random.split(jax.random.key(seed), members), config)
        runs = {}
        for on in (True, False):
            with switched(on):
                trained, p = ensemble.fit_ensemble(
                    states, inputs, side, targets, rates, config=config, batch_size=batch
                )
                runs[on] = (trained, p)
                assert p.shape == (members, length, config.num_models)
                assert_in_clip(p, config)
                for e in range(members):
                    alone = jax.tree.map(lambda a, e=e: a[e], states)
                    member = jax.tree.map(lambda a, e=e: a[e], trained)
                    want, want_p = gln_jax.fit_stream(
                        alone, inputs, side, targets, rates[e], config=config, batch_size=batch
                    )
                    fused = kernel.use_kernel(config, states, batch) and kernel.use_kernel(
                        config, alone, batch
                    )
                    if fused:  # one route, one order of operations
                        np.testing.assert_array_equal(p[e], want_p)
                        assert_same_state(member, jax.tree.map(np.asarray, want))
                    else:  # a vmapped scan against a scan: XLA may fuse them differently
                        assert_close(p[e], want_p, dtype, f"member {e}")
                        assert_states_close(member, want, dtype)
                    if idle_member and e == 0:
                        assert_same_state(
                            member, jax.tree.map(np.asarray, alone)._replace(step=np.int32(length))
                        )
        (got, p), (want, want_p) = runs[True], runs[False]
        assert_close(p, want_p, dtype, "ensemble predictions")
        assert_states_close(got, want, dtype)


# -- threads -------------------------------------------------------------------------------


def run_threads(work, count: int) -> list:
    """``work(i)`` for ``i < count`` on as many threads started together; their results, or
    the first exception any raised."""
    results, errors = [None] * count, []
    start = threading.Barrier(count)

    def target(i):
        try:
            start.wait()
            results[i] = work(i)
        except BaseException as err:  # noqa: BLE001 - re-raised below
            errors.append(err)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


THREAD_NETS = st.sampled_from(
    [Net((1,), 1, 1, 0, 2), Net((3, 7, 1), 6, 6, 3, 10), Net((2, 1), 20, 20, 4, 3)]
)


@fuzz(max_examples=2)
@given(
    nets=st.lists(THREAD_NETS, min_size=2, max_size=4),
    dtype=st.sampled_from(["float32", "float64"]),
    seed=st.integers(0, 2**16),
)
@example(
    nets=[Net((1,), 1, 1, 0, 2), Net((3, 7, 1), 6, 6, 3, 10), Net((1,), 1, 1, 0, 2)],
    dtype="float64",
    seed=0,
)
def test_threads_on_separate_models_equal_a_sequential_run(compiled, x64, nets, dtype, seed):
    """Several threads each build a model and fit, learn a batch of 33 (the kernel's threaded
    call) and predict, at once, and also ``fit_stream`` one shared state: every result equals
    the same calls made one after another, bit for bit, and the shared state is intact."""
    config = nets[0].config(dtype)
    shared = gln_jax.init(jax.random.key(seed), config)
    start = weights(shared)

    def work(i):
        net = nets[i]
        x, s, y, _ = stream(net, 33, seed + i, dtype)
        model = net.model(dtype, seed=seed + i, learning_rate=0.01)
        fitted = model.fit(x[:9], y[:9], side_info=s[:9])
        learned = model.predict(x, target=y, return_probs=True, side_info=s)
        probs = model.predict(x, return_probs=True, side_info=s)
        x0, s0, y0, r0 = stream(nets[0], 9, seed, dtype)
        state, p = gln_jax.fit_stream(shared, x0, s0, y0, r0 * (i + 1), config=config)
        return fitted, learned, probs, model.reference_state(), p, state

    together = run_threads(work, len(nets))
    alone = [work(i) for i in range(len(nets))]
    for got, want in zip(together, alone, strict=True):
        for a, b in zip(got[:3] + got[4:5], want[:3] + want[4:5], strict=True):
            np.testing.assert_array_equal(a, b)
        assert_same_state(got[3], want[3])
        assert_same_state(jax.tree.map(np.asarray, got[5]), jax.tree.map(np.asarray, want[5]))
    for before, now in zip(start, weights(shared), strict=True):
        np.testing.assert_array_equal(now, before)


@fuzz(max_examples=2)
@given(
    net=THREAD_NETS,
    count=st.integers(2, 4),
    steps=st.integers(1, 6),
    batch=st.sampled_from([1, 3, 17, 33]),
    dtype=st.sampled_from(["float32", "float64"]),
    seed=st.integers(0, 2**16),
)
@example(net=Net((3, 7, 1), 6, 6, 3, 10), count=4, steps=6, batch=33, dtype="float32", seed=0)
def test_threads_sharing_one_model_lose_no_update(
    compiled, x64, net, count, steps, batch, dtype, seed
):
    """Threads share one model (the facade serialises its calls, docs/semantics.md): each
    learns one example ``steps`` times while predicting a batch and reading the state. No
    update is lost (the same example each time: the order cannot matter, so the model equals
    a sequential run bit for bit), and every prediction made meanwhile is the prediction of
    one of the states of that run (none is torn), one that holds the thread's own updates."""
    x, s, y, _ = stream(net, batch + 1, seed, dtype)
    example_x, example_s, example_y = x[:1], s[:1], y[:1]
    model = net.model(dtype, seed=seed, learning_rate=0.01)
    replay = net.model(dtype, seed=seed, learning_rate=0.01)
    candidates = [replay.predict(x[1:], return_probs=True, side_info=s[1:])]
    for _ in range(count * steps):
        replay.predict(example_x, target=example_y, side_info=example_s)
        candidates.append(replay.predict(x[1:], return_probs=True, side_info=s[1:]))

    def work(i):
        seen = []
        for _ in range(steps):
            model.predict(example_x, target=example_y, side_info=example_s)
            seen.append(model.predict(x[1:], return_probs=True, side_info=s[1:]))
            assert int(model.reference_state().step) <= count * steps
        return seen

    for seen in run_threads(work, count):
        for k, probs in enumerate(seen):
            assert_in_clip(probs, model.config)
            states = [j for j, c in enumerate(candidates) if np.array_equal(probs, c)]
            assert states, "a prediction of no state of the sequential run (a torn state)"
            assert max(states) >= k + 1, "a prediction that misses the thread's own updates"
    assert model.step == replay.step == count * steps
    assert_same_state(model.reference_state(), replay.reference_state())
