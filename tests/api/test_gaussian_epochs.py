"""GaussianGLN's multi-epoch path (shuffled passes by seed, schedules across passes) and its
side information and online transform, as in the Bernoulli facade."""

import numpy as np
import pytest

from gln_jax import GaussianGLN
from gln_jax.api.gaussian_facade import epoch_order


def regression(count=60, width=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, width)).astype(np.float32)
    y = (np.sin(2 * x[:, 0]) + 0.5 * x[:, 1] + 0.1 * rng.standard_normal(count)).astype(np.float32)
    return x, y


def model(backend="jax", **kwargs):
    settings = dict(context_map_size=2, learning_rate=0.01)
    settings.update(kwargs)
    return GaussianGLN(backend, [8, 8], 4, **settings)


def weights(m):
    return [np.asarray(layer.weights) for layer in m.reference_state().layers]


def test_epoch_order_is_a_fresh_permutation_per_pass_and_reproducible():
    order = epoch_order(50, 3, 7)
    assert order.shape == (150,) and order.dtype == np.int64
    passes = order.reshape(3, 50)
    for one in passes:
        assert sorted(one.tolist()) == list(range(50))
    assert not np.array_equal(passes[0], passes[1])
    assert not np.array_equal(passes[1], passes[2])
    np.testing.assert_array_equal(order, epoch_order(50, 3, 7))
    np.testing.assert_array_equal(epoch_order(50, 5, 7)[:150], order)  # prefix-stable
    assert not np.array_equal(epoch_order(50, 1, 8), passes[0])
    with pytest.raises(ValueError, match="shuffle_seed >= 0"):
        epoch_order(5, 1, -1)
    with pytest.raises(TypeError, match="num_epochs must be an int"):
        epoch_order(5, 1.0, 0)


def test_shuffled_epochs_are_one_pass_over_the_permuted_data():
    x, y = regression()
    shuffled = model("numpy")
    out = shuffled.fit(x, y, num_epochs=3, shuffle_seed=5)
    order = epoch_order(60, 3, 5)
    reference = model("numpy")
    expected = reference.fit(x[order], y[order])
    assert out.shape == (180,) and shuffled.step == 180
    np.testing.assert_array_equal(out, expected)
    for a, b in zip(weights(shuffled), weights(reference), strict=True):
        np.testing.assert_array_equal(a, b)
    # without a seed the passes keep the order given, as before
    plain, tiled = model("numpy"), model("numpy")
    plain.fit(x, y, num_epochs=2)
    tiled.fit(np.concatenate([x, x]), np.concatenate([y, y]))
    np.testing.assert_allclose(plain.predict(x), tiled.predict(x), rtol=1e-6, atol=1e-6)


@pytest.mark.heavy
def test_more_epochs_fit_the_training_data_better():
    x, y = regression(count=120)
    errors = []
    for epochs in (1, 10):
        m = model(weight_clipping=1.0)
        m.fit(x, y, num_epochs=epochs, shuffle_seed=0)
        errors.append(float(np.mean((m.predict(x) - y) ** 2)))
    assert errors[1] < 0.7 * errors[0], errors


@pytest.mark.heavy
def test_a_schedule_steps_once_per_example_across_epochs():
    x, y = regression()
    first_pass_only = model(learning_rate=lambda step: 0.01 if step < 60 else 0.0)
    first_pass_only.fit(x, y, num_epochs=2, shuffle_seed=3)
    one = model()
    order = epoch_order(60, 2, 3)[:60]
    one.fit(x[order], y[order])
    for a, b in zip(weights(first_pass_only), weights(one), strict=True):
        np.testing.assert_array_equal(a, b)
    assert first_pass_only.step == 120


@pytest.mark.parametrize(
    ("seed", "error", "match"),
    [
        (-1, ValueError, "non-negative"),
        (1.5, TypeError, "shuffle_seed"),
        (True, TypeError, "shuffle_seed"),
    ],
)
def test_bad_shuffle_arguments_change_nothing(seed, error, match):
    x, y = regression()
    m = model()
    before = weights(m)
    with pytest.raises(error, match=match):
        m.fit(x, y, num_epochs=2, shuffle_seed=seed)
    with pytest.raises(ValueError, match="num_epochs"):
        m.fit(x, y, num_epochs=0, shuffle_seed=0)
    with pytest.raises(ValueError, match="shuffling needs"):
        m.fit(x, y[:10], num_epochs=2, shuffle_seed=0)
    assert m.step == 0
    for a, b in zip(before, weights(m), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.heavy
def test_side_info_of_its_own_width():
    x, y = regression()
    gates = x[:, :2] * 3.0
    m = model(side_info_size=2)
    assert m.config.side_info_size == 2 and m.config.base_prediction_size == 4
    with pytest.raises(ValueError, match="pass side_info="):
        m.predict(x[:3])
    m.fit(x, y, side_info=gates, num_epochs=2, shuffle_seed=0)
    mean, std = m.predict(x[:5], side_info=gates[:5], return_std=True)
    assert mean.shape == std.shape == (5,) and np.isfinite(mean).all()
    with pytest.raises(ValueError, match="side_info must have shape"):
        m.fit(x, y, side_info=gates[:10], num_epochs=2, shuffle_seed=0)


@pytest.mark.heavy
def test_standardize_transform_learns_online_and_round_trips(tmp_path):
    x, y = regression()
    scaled = x * 50.0 + 20.0  # what the gates see: far from standardised
    m = GaussianGLN(
        "jax",
        [8, 8],
        4,
        context_map_size=2,
        learning_rate=0.01,
        side_info_size=4,
        side_info_transform="standardize",
    )
    m.fit(x, y, side_info=scaled, num_epochs=2, shuffle_seed=1)
    statistics = m.side_info_state
    assert int(statistics.count) == 120
    np.testing.assert_allclose(statistics.mean, scaled.mean(axis=0), rtol=1e-4)
    path = tmp_path / "model.npz"
    m.save(path)
    back = GaussianGLN.load(path, "numpy")
    np.testing.assert_allclose(
        back.predict(x[:8], side_info=scaled[:8]),
        m.predict(x[:8], side_info=scaled[:8]),
        rtol=1e-4,
        atol=1e-5,
    )
    assert int(back.side_info_state.count) == 120
    # an online standardisation (with a negligible eps) makes the gating blind to an affine
    # change of units: the same side information in other units trains the same model (up to
    # float32 rounding, which may flip the gate of an example lying on a hyperplane)
    from gln_jax.core._transforms import make_transform

    def standardised():
        transform = make_transform("standardize", eps=1e-12)
        return model(side_info_size=4, side_info_transform=transform)

    one, other = standardised(), standardised()
    one.fit(x, y, side_info=scaled, num_epochs=2, shuffle_seed=1)
    other.fit(x, y, side_info=x * 0.5 - 3.0, num_epochs=2, shuffle_seed=1)
    same = np.isclose(
        other.predict(x, side_info=x * 0.5 - 3.0), one.predict(x, side_info=scaled), atol=1e-4
    )
    assert same.mean() > 0.9
    raw = GaussianGLN("jax", [8, 8], 4, context_map_size=2, side_info_size=4, learning_rate=0.01)
    raw.fit(x, y, side_info=scaled, num_epochs=2, shuffle_seed=1)
    assert not np.allclose(raw.predict(x, side_info=scaled), m.predict(x, side_info=scaled))


def test_bernoulli_only_transform_is_refused():
    from gln_jax.core._transforms import make_transform

    with pytest.raises(ValueError, match="base_gain"):
        model(side_info_transform=make_transform("center", base_gain=2.0))


def test_non_finite_fit_restores_weights_step_and_statistics():
    x, y = regression()
    m = model(side_info_transform="standardize")
    m.fit(x, y)
    runner = m._runner
    good = m.reference_state()
    poisoned = runner.engine.from_reference(
        good._replace(
            layers=tuple(
                layer._replace(weights=np.full_like(layer.weights, np.nan)) for layer in good.layers
            )
        )
    )
    runner.state = poisoned
    count = int(m.side_info_state.count)
    with pytest.raises(FloatingPointError, match="unchanged"):
        m.fit(x, y, num_epochs=2, shuffle_seed=0)
    assert runner.state is poisoned
    assert int(m.side_info_state.count) == count == 60
    assert m._step == 60
