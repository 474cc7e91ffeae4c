"""Online side-information transforms: Welford against a hand computation, freezing, masking."""

import jax
import numpy as np
import pytest

from gln_jax.core import _transforms as transforms


@pytest.fixture(scope="module")
def stream():
    rng = np.random.default_rng(3)
    return rng.random((10, 4)).astype(np.float32) * np.array([1, 2, 3, 4], np.float32)


def hand_welford(xs, freeze_after=None):
    """Mean and population std of rows 0..t (or of the first ``freeze_after`` rows), per t."""
    means, stds = [], []
    for t in range(xs.shape[0]):
        seen = xs[: t + 1] if freeze_after is None else xs[: min(t + 1, freeze_after)]
        seen = seen.astype(np.float64)
        means.append(seen.mean(0))
        stds.append(seen.std(0))
    return np.array(means), np.array(stds)


def test_center_equals_hand_computed_running_mean(stream):
    config = transforms.make_transform("center", scale=10.0)
    state, zs = transforms.scan(transforms.init(4), stream, config=config)
    means, _ = hand_welford(stream)
    np.testing.assert_allclose(zs, 10.0 * (stream - means), rtol=1e-5, atol=1e-5)
    assert int(state.count) == 10
    np.testing.assert_allclose(state.mean, stream.astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(state.m2, 10 * stream.astype(np.float64).var(0), rtol=1e-5)
    assert np.all(zs[0] == 0)  # the first example is its own mean


def test_standardize_equals_hand_computed(stream):
    config = transforms.make_transform("standardize", scale=2.0, eps=0.5)
    _, zs = transforms.scan(transforms.init(4), stream, config=config)
    means, stds = hand_welford(stream)
    np.testing.assert_allclose(zs, 2.0 * (stream - means) / (stds + 0.5), rtol=1e-5, atol=1e-5)


def test_update_then_apply_one_by_one_equals_scan(stream):
    config = transforms.make_transform("standardize")
    state = transforms.init(4)
    rows = []
    for x in stream:
        state, z = transforms.update_apply(state, x, config=config)
        rows.append(z)
    _, zs = transforms.scan(transforms.init(4), stream, config=config)
    np.testing.assert_allclose(np.array(rows), zs, rtol=1e-6, atol=1e-6)


def test_freeze_after_warm_up(stream):
    config = transforms.make_transform("standardize", freeze_after=3)
    state, zs = transforms.scan(transforms.init(4), stream, config=config)
    means, stds = hand_welford(stream, freeze_after=3)
    np.testing.assert_allclose(zs, (stream - means) / (stds + 0.1), rtol=1e-5, atol=1e-5)
    assert int(state.count) == 3
    np.testing.assert_allclose(state.mean, stream[:3].astype(np.float64).mean(0), rtol=1e-6)
    # frozen statistics ignore any further update
    again = transforms.update(state, stream[0] + 100, config=config)
    jax.tree.map(np.testing.assert_array_equal, again, state)


def test_mask_and_chunked_driver_equal_one_scan(stream):
    config = transforms.make_transform("center")
    full_state, full = transforms.scan(transforms.init(4), stream, config=config)
    mask = np.arange(10) < 6
    state, _ = transforms.scan(transforms.init(4), stream, config=config, mask=mask)
    assert int(state.count) == 6
    np.testing.assert_allclose(state.mean, stream[:6].astype(np.float64).mean(0), rtol=1e-6)
    chunked_state, chunked = transforms.transform_stream(
        transforms.init(4), stream, config=config, chunk=4
    )
    np.testing.assert_allclose(chunked, full, rtol=1e-6, atol=1e-6)
    jax.tree.map(np.testing.assert_array_equal, chunked_state, full_state)


def test_apply_changes_nothing_and_starts_at_identity(stream):
    config = transforms.make_transform("standardize", scale=3.0)
    fresh = transforms.init(4)
    np.testing.assert_allclose(transforms.apply_batch(fresh, stream, config=config), 3 * stream)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"kind": "whiten"}, ValueError),
        ({"scale": 0.0}, ValueError),
        ({"scale": float("nan")}, ValueError),
        ({"scale": "1"}, TypeError),
        ({"freeze_after": 0}, ValueError),
        ({"freeze_after": 2.5}, TypeError),
        ({"eps": -1.0}, ValueError),
    ],
)
def test_bad_settings_raise(kwargs, error):
    with pytest.raises(error):
        transforms.make_transform(**kwargs)
