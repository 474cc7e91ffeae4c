"""The pool of GLNs (gln_jax.core.pool): its switching mixture, input models and learning rule."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gln_jax
from gln_jax.core import pool


def _config(**options):
    member = gln_jax.make_config([4, 1], 8, context_map_size=2, num_classes=2)
    defaults = {"capacity": 4, "projection_size": 3}
    return pool.make_pool_config(member, **{**defaults, **options})


def test_fixed_share_equals_the_hand_computed_update():
    weights = np.array([0.5, 0.3, 0.2, 0.0])
    likelihoods = np.array([0.9, 0.5, 0.1, 0.7])
    in_use = np.array([True, True, True, False])
    rate = 0.1
    log_weights = np.where(in_use, np.log(np.where(in_use, weights, 1.0)), pool.UNUSED_LOG_WEIGHT)
    got = pool.fixed_share(
        jnp.asarray(log_weights, jnp.float32),
        jnp.asarray(np.log(likelihoods), jnp.float32),
        jnp.asarray(in_use),
        rate,
    )
    # posterior [0.45, 0.15, 0.02] / 0.62, then (1 - a) * posterior + a / 3
    posterior = np.array([0.45, 0.15, 0.02]) / 0.62
    expected = 0.9 * posterior + 0.1 / 3
    np.testing.assert_allclose(np.exp(np.asarray(got[:3])), expected, rtol=1e-6)
    assert float(got[3]) == float(np.float32(pool.UNUSED_LOG_WEIGHT))
    np.testing.assert_allclose(np.exp(np.asarray(got[:3])).sum(), 1.0, rtol=1e-6)


def test_fixed_share_without_switching_is_bayes_rule():
    got = pool.fixed_share(
        jnp.log(jnp.array([0.25, 0.75])), jnp.log(jnp.array([0.8, 0.2])), jnp.array([True, True]), 0
    )
    np.testing.assert_allclose(np.exp(np.asarray(got)), [0.2 / 0.35, 0.15 / 0.35], rtol=1e-6)


@pytest.mark.heavy
def test_input_densities_equal_the_shrunk_gaussian_written_out():
    config = _config(prior_strength=2.0, novelty_scale=3.0, prior_variance=0.5, input_weight=0.5)
    state = pool.init(jax.random.key(0), config)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 3))
    owner = np.array([0, 0, 0, 1, 1, 0, 1])
    counts = np.bincount(owner, minlength=4).astype(np.float32)
    sums = np.stack([z[owner == m].sum(0) if (owner == m).any() else np.zeros(3) for m in range(4)])
    moments = np.stack([z[owner == m].T @ z[owner == m] for m in range(4)])
    state = state._replace(
        counts=jnp.asarray(counts),
        sums=jnp.asarray(sums, jnp.float32),
        moments=jnp.asarray(moments, jnp.float32),
        total_count=jnp.asarray(7.0, jnp.float32),
        total_sum=jnp.asarray(z.sum(0), jnp.float32),
        total_moment=jnp.asarray(z.T @ z, jnp.float32),
    )
    query = rng.normal(size=(2, 3))
    got = np.asarray(
        pool.input_log_densities(state, jnp.asarray(query, jnp.float32), config=config)
    )
    mean0 = z.mean(0)
    cov0 = 3.0 * np.cov(z.T, bias=True) + 0.5 * np.eye(3)
    for m in range(4):
        mine = z[owner == m]
        mean = (mine.sum(0) + 2.0 * mean0) / (len(mine) + 2.0)
        scatter = (mine - mean).T @ (mine - mean)
        cov = (scatter + 2.0 * cov0) / (len(mine) + 2.0)
        diff = query - mean
        maha = np.einsum("bi,ij,bj->b", diff, np.linalg.inv(cov), diff)
        logpdf = -0.5 * (maha + np.linalg.slogdet(cov)[1] + 3 * np.log(2 * np.pi))
        np.testing.assert_allclose(got[:, m], 0.5 * logpdf, rtol=2e-4, atol=2e-4)


@pytest.mark.heavy
def test_first_example_adopts_the_fresh_member_and_opens_the_next_slot():
    config = _config()
    state = pool.init(jax.random.key(1), config)
    assert np.asarray(state.in_use).tolist() == [True, False, False, False]
    x = jnp.full((8,), 0.3, jnp.float32)
    new, probs = pool.step(state, x, x, jnp.int32(1), 0.1, config=config)
    member = jax.tree.map(lambda leaf: leaf[0], state.members)
    p = float(gln_jax.apply(member, x, x, config=config.member)[0])
    np.testing.assert_allclose(np.asarray(probs), [1 - p, p], rtol=1e-6)  # the only member
    assert np.asarray(new.in_use).tolist() == [True, True, False, False]
    assert int(new.fresh) == 1 and np.asarray(new.counts).tolist() == [1.0, 0.0, 0.0, 0.0]
    # the new fresh member enters with the fixed-share mass a / n of two members
    np.testing.assert_allclose(np.exp(np.asarray(new.log_weights[:2])).sum(), 1.0, rtol=1e-6)
    expected_single = network_update(state, x, 1, 0.1, config)
    for got, want in zip(
        jax.tree.leaves(new.members), jax.tree.leaves(expected_single), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want))
    for got, old in zip(jax.tree.leaves(new.members), jax.tree.leaves(state.members), strict=True):
        np.testing.assert_array_equal(np.asarray(got[1:]), np.asarray(old[1:]))


@pytest.mark.parametrize(("count", "rate"), [(3.0, 0.1), (9.0, 0.05)])
def test_rate_scale_steps_the_learner_at_its_own_inverse_time_rate(count, rate):
    config = _config(rate_scale=0.5)
    state = pool.init(jax.random.key(5), config)
    state = state._replace(counts=state.counts.at[0].set(count))  # slot 0 learned ``count``
    x = jnp.full((8,), 0.3, jnp.float32)
    new, _ = pool.step(state, x, x, jnp.int32(1), 0.1, config=config)
    # min(0.1, 0.5 / (count + 1)): the given rate for 3 examples, 0.05 for 9
    expected = network_update(state, x, 1, rate, config)
    for got, want in zip(jax.tree.leaves(new.members), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(got[0]), np.asarray(want), rtol=1e-6)
    assert float(new.counts[0]) == count + 1.0
    if rate != 0.1:  # the constant rate would have stepped further
        constant, _ = pool.step(state, x, x, jnp.int32(1), 0.1, config=_config())
        assert not np.allclose(
            np.asarray(constant.members.layers[0].weights[0]),
            np.asarray(new.members.layers[0].weights[0]),
        )


def test_predict_weighs_members_by_counts_or_by_the_stream_posterior():
    config = _config()
    state = pool.init(jax.random.key(6), config)
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(40, 8)).astype(np.float32)
    y = rng.integers(0, 2, size=40).astype(np.int32)
    state, _ = pool.scan_step(state, x, x, y, jnp.float32(0.1), config=config)
    assert int(np.asarray(state.in_use).sum()) >= 2
    z = jnp.asarray(x) @ state.projection
    log_x = np.asarray(pool.input_log_densities(state, z, config=config))
    probs = np.asarray(pool.member_probabilities(state.members, x, x, config=config))
    in_use = np.asarray(state.in_use)
    priors = {
        "counts": np.log(np.asarray(state.counts) + 1.0),  # n_m + 1, normalised by softmax
        "posterior": np.asarray(state.log_weights),
    }
    for routing, prior in priors.items():
        scores = np.where(in_use[None], prior[None] + log_x, -np.inf)
        weights = np.exp(scores - scores.max(1, keepdims=True))
        weights /= weights.sum(1, keepdims=True)
        got = pool.predict(state, x, x, config=config, routing=routing)
        np.testing.assert_allclose(
            np.asarray(got), np.einsum("bm,bmk->bk", weights, probs), rtol=1e-5, atol=1e-6
        )
    default = pool.predict(state, x, x, config=config)
    np.testing.assert_array_equal(
        np.asarray(default), np.asarray(pool.predict(state, x, x, config=config, routing="counts"))
    )
    with pytest.raises(ValueError, match="routing"):
        pool.predict(state, x, x, config=config, routing="uniform")


def network_update(state, x, label, rate, config):
    member = jax.tree.map(lambda leaf: leaf[0], state.members)
    return gln_jax.update(member, x, x, jnp.int32(label), rate, config=config.member)[0]


def _two_tasks(seed=0, count=800):
    """Two tasks in different regions of the input with opposite uses of one feature."""
    rng = np.random.default_rng(seed)

    def task(region, flip):
        x = np.full((count, 8), 0.05, np.float32)
        x[:, region] = rng.uniform(0.1, 0.9, size=(count, 4))
        y = (x[:, region.start] > 0.5).astype(np.int32)
        return x, (1 - y if flip else y).astype(np.int32)

    return task(slice(0, 4), False), task(slice(4, 8), True)


def _accuracy(state, x, y, config):
    eps = config.member.pred_clipping
    probs = pool.predict(state, jnp.clip(x, eps, 1 - eps), jnp.asarray(x), config=config)
    return float(np.mean(np.asarray(probs).argmax(1) == y))


@pytest.mark.heavy
def test_a_member_that_learned_one_task_keeps_it_through_a_second():
    config = _config(capacity=4, projection_size=4, input_weight=1.0, switch_rate=1e-4)
    state = pool.init(jax.random.key(2), config)
    run = jax.jit(functools.partial(pool.scan_step, config=config))
    (xa, ya), (xb, yb) = _two_tasks()
    eps = config.member.pred_clipping
    state, _ = run(state, np.clip(xa, eps, 1 - eps), xa, ya, jnp.float32(0.1))
    after_a = _accuracy(state, xa, ya, config)
    learner_a = int(np.argmax(np.asarray(state.counts)))
    snapshot = jax.tree.map(lambda leaf: np.asarray(leaf[learner_a]), state.members)
    state, _ = run(state, np.clip(xb, eps, 1 - eps), xb, yb, jnp.float32(0.1))
    assert after_a > 0.85
    assert _accuracy(state, xb, yb, config) > 0.85
    assert _accuracy(state, xa, ya, config) >= after_a - 0.05  # the member is kept; routing
    kept = jax.tree.map(lambda leaf: np.asarray(leaf[learner_a]), state.members)
    for got, want in zip(jax.tree.leaves(kept), jax.tree.leaves(snapshot), strict=True):
        np.testing.assert_array_equal(got, want)
    # a plain GLN on the same stream forgets the first task (the rules conflict on one output)
    config_one = config.member
    single = gln_jax.init(jax.random.key(2), config_one)
    single, _ = gln_jax.scan_update(
        single, np.clip(xa, eps, 1 - eps), xa, ya, 0.1, config=config_one
    )
    single, _ = gln_jax.scan_update(
        single, np.clip(xb, eps, 1 - eps), xb, yb, 0.1, config=config_one
    )
    plain = np.asarray(
        gln_jax.batch_apply(single, np.clip(xa, eps, 1 - eps), xa, config=config_one)
    )
    assert float(np.mean((plain[:, 0] > 0.5) == ya)) < _accuracy(state, xa, ya, config)


@pytest.mark.heavy
def test_step_compiles_once_for_new_data_and_rates():
    config = _config()
    traces = []

    def counted(state, x, side, y, rate):
        traces.append(1)
        return pool.scan_step(state, x, side, y, rate, config=config)

    run = jax.jit(counted)
    state = pool.init(jax.random.key(3), config)
    rng = np.random.default_rng(0)
    for rate in (0.1, 0.01, 0.003):
        x = rng.uniform(size=(16, 8)).astype(np.float32)
        y = rng.integers(0, 2, size=16).astype(np.int32)
        state, probs = run(state, x, x, y, jnp.float32(rate))
    assert len(traces) == 1
    assert np.isfinite(np.asarray(probs)).all() and np.asarray(state.in_use).sum() >= 2


@pytest.mark.heavy
def test_full_pool_empties_its_least_used_member_to_make_it_fresh():
    config = _config(capacity=2)
    state = pool.init(jax.random.key(4), config)
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(64, 8)).astype(np.float32)
    y = rng.integers(0, 2, size=64).astype(np.int32)
    state, _ = pool.scan_step(state, x, x, y, jnp.float32(0.1), config=config)
    assert np.asarray(state.in_use).tolist() == [True, True]
    np.testing.assert_allclose(np.exp(np.asarray(state.log_weights)).sum(), 1.0, rtol=1e-5)
    # full: adopting the fresh member empties the other (the least used) and makes it fresh
    fresh = int(state.fresh)
    other = 1 - fresh
    x0 = jnp.asarray(x[0])
    favour_fresh = jnp.where(jnp.arange(2) == fresh, 0.0, -50.0).astype(jnp.float32)
    new, _ = pool.step(
        state._replace(log_weights=favour_fresh),
        x0,
        x0,
        jnp.int32(y[0]),
        0.1,
        config=config._replace(input_weight=1e-6),  # the weights decide: the fresh one learns
    )
    assert int(new.fresh) == other
    assert float(new.counts[other]) == 0.0
    assert float(new.counts[fresh]) == float(state.counts[fresh]) + 1.0
    for layer in new.members.layers:
        w = np.asarray(layer.weights[other])
        np.testing.assert_array_equal(w, np.full_like(w, 1.0 / w.shape[-1]))
    for layer, old in zip(new.members.layers, state.members.layers, strict=True):
        np.testing.assert_array_equal(np.asarray(layer.hyperplanes), np.asarray(old.hyperplanes))
    assert float(new.sums[other].sum()) == 0.0 and float(new.moments[other].sum()) == 0.0


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("capacity", 1, "capacity"),
        ("switch_rate", 1.0, "switch_rate"),
        ("projection_size", 0, "projection_size"),
        ("novelty_scale", 0.0, "novelty_scale"),
        ("input_weight", float("nan"), "input_weight"),
        ("rate_scale", 0.0, "rate_scale"),
        ("rate_scale", float("inf"), "rate_scale"),
        ("rate_scale", "3", "rate_scale"),
    ],
)
def test_config_refuses_out_of_range_options(option, value, message):
    member = gln_jax.make_config([4, 1], 8)
    with pytest.raises(ValueError, match=message):
        pool.make_pool_config(member, **{option: value})
    with pytest.raises(TypeError, match="GLNConfig"):
        pool.make_pool_config({"layer_sizes": [4, 1]})
