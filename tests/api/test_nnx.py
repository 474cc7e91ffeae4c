"""gln_jax.nnx.GLN: equals the functional API, survives split/merge, works under jit and scan."""

import functools
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

nnx = pytest.importorskip("flax.nnx")
optax = pytest.importorskip("optax")

import gln_jax  # noqa: E402
from gln_jax.nnx import GLN, GLNGating, GLNStep, GLNWeights  # noqa: E402

CONFIG = gln_jax.make_config([4, 1], 6, context_map_size=2, num_classes=3)
# The functional oracle, jitted once (eager dispatch of every small op is slow).
update = jax.jit(functools.partial(gln_jax.update, config=CONFIG))
batch_update = jax.jit(functools.partial(gln_jax.batch_update, config=CONFIG))
# The module's methods, jitted once and shared by the tests (eager calls compile op by op).
learn = nnx.jit(lambda m, a, b, t, lr: m.update(a, b, t, lr))
predict = nnx.jit(lambda m, a, b: m(a, b))


def stream(n=16, seed=0):
    key_x, key_y = jax.random.split(jax.random.key(seed))
    x = jax.random.uniform(key_x, (n, CONFIG.side_info_size), minval=0.05, maxval=0.95)
    y = jax.random.randint(key_y, (n,), 0, CONFIG.num_classes)
    return x, y


def assert_state_equal(module, state, **tol):
    for a, b in zip(jax.tree.leaves(module.state()), jax.tree.leaves(state), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), **tol)


def test_constructor_draws_the_functional_init_from_the_params_stream():
    module = GLN([4, 1], 6, context_map_size=2, num_classes=3, rngs=nnx.Rngs(params=7))
    assert module.config == CONFIG
    assert_state_equal(module, gln_jax.init(nnx.Rngs(params=7).params(), CONFIG), rtol=0)


@pytest.mark.heavy
def test_equals_the_functional_api_step_by_step_under_jit():
    state = gln_jax.init(jax.random.key(0), CONFIG)
    module = GLN.from_state(CONFIG, state)
    x, y = stream()
    for t in range(x.shape[0]):
        rate = 0.05 * (1 + t % 3)  # a traced rate: no recompiles
        state, p = update(state, x[t], x[t], y[t], rate)
        q = learn(module, x[t], x[t], y[t], rate)
        np.testing.assert_allclose(q, p, rtol=1e-6)
        assert_state_equal(module, state, rtol=1e-6, atol=1e-7)
    assert int(module.step.get_value()) == x.shape[0]
    expected = gln_jax.batch_apply(state, x, x, config=CONFIG)
    np.testing.assert_allclose(predict(module, x, x), expected, rtol=1e-6)
    np.testing.assert_allclose(predict(module, x[3], x[3]), expected[3], rtol=1e-6)


@pytest.mark.heavy
def test_batch_update_equals_the_functional_batch_update():
    state = gln_jax.init(jax.random.key(1), CONFIG)
    module = GLN.from_state(CONFIG, state)
    x, y = stream(8)
    state, p = batch_update(state, x, x, y, jnp.full(8, 0.1))
    np.testing.assert_allclose(learn(module, x, x, y, 0.1), p, rtol=1e-6)
    assert_state_equal(module, state, rtol=1e-6, atol=1e-7)


def test_scan_equals_the_functional_scan():
    state = gln_jax.init(jax.random.key(2), CONFIG)
    module = GLN.from_state(CONFIG, state)
    x, y = stream()
    rates = jnp.full(x.shape[0], 0.1)
    state, p = gln_jax.scan_update(state, x, x, y, rates, config=CONFIG)

    @nnx.scan(in_axes=(nnx.Carry, 0, 0, 0), out_axes=(nnx.Carry, 0))
    def learn(m, a, t, lr):
        return m, m.update(a, a, t, lr)

    _, q = learn(module, x, y, rates)
    np.testing.assert_allclose(q, p, rtol=1e-6)
    assert_state_equal(module, state, rtol=1e-6, atol=1e-7)


def test_split_merge_and_variable_types():
    module = GLN([4, 1], 6, context_map_size=2, num_classes=3, rngs=nnx.Rngs(0))
    x, y = stream(8)
    learn(module, x, x, y, 0.1)
    graphdef, variables = nnx.split(module)
    copy = nnx.merge(graphdef, variables)
    np.testing.assert_array_equal(predict(copy, x, x), predict(module, x, x))
    learn(copy, x[0], x[0], y[0], 0.1)
    learn(module, x[0], x[0], y[0], 0.1)
    assert_state_equal(copy, module.state(), rtol=0)
    assert len(jax.tree.leaves(nnx.state(module, GLNWeights))) == 2
    assert len(jax.tree.leaves(nnx.state(module, GLNGating))) == 4
    assert len(jax.tree.leaves(nnx.state(module, GLNStep))) == 1
    assert jax.tree.leaves(nnx.state(module, nnx.Param)) == []


def test_optimiser_over_a_composite_model_never_touches_the_head():
    class Model(nnx.Module):
        def __init__(self, rngs):
            self.features = nnx.Linear(6, 6, rngs=rngs)
            self.head = GLN([4, 1], 6, context_map_size=2, num_classes=3, rngs=rngs)

        def __call__(self, x):
            h = jnp.tanh(self.features(x))
            return self.head(jax.nn.sigmoid(h), h)

    model = Model(nnx.Rngs(0))
    x, _ = stream(8)
    head_before = jax.tree.map(np.asarray, model.head.state())
    kernel_before = np.asarray(model.features.kernel.get_value())
    optimizer = nnx.Optimizer(model, optax.sgd(0.5), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer):
        grads = nnx.grad(lambda m: jnp.sum(m(x)))(model)
        optimizer.update(model, grads)

    train_step(model, optimizer)
    assert not np.array_equal(np.asarray(model.features.kernel.get_value()), kernel_before)
    assert_state_equal(model.head, head_before, rtol=0)


@pytest.mark.heavy
def test_guide_example_trains_a_head_on_flax_features():
    pytest.importorskip("sklearn")  # the example's data set is scikit-learn's digits
    guide = (Path(__file__).parents[2] / "docs" / "guides" / "nnx.md").read_text()
    code = re.search(r"```python\n(.*?)```", guide, re.S).group(1)
    namespace = {}
    exec(compile(code, "docs/guides/nnx.md", "exec"), namespace)  # noqa: S102 - our own guide
    assert namespace["accuracy"] > 0.8  # one online pass over 1400 digits (0.887 measured)


def test_bad_construction_is_refused():
    state = gln_jax.init(jax.random.key(0), CONFIG)
    with pytest.raises(TypeError, match="exactly one"):
        GLN([4, 1], 6, context_map_size=2, num_classes=3)
    with pytest.raises(TypeError, match="exactly one"):
        GLN([4, 1], 6, context_map_size=2, num_classes=3, rngs=nnx.Rngs(0), state=state)
    wrong = gln_jax.make_config([4, 1], 7, context_map_size=2, num_classes=3)
    with pytest.raises(ValueError, match="shapes"):
        GLN.from_state(wrong, state)
    with pytest.raises(ValueError, match="layer_sizes"):
        GLN([0, 1], 6, rngs=nnx.Rngs(0))
