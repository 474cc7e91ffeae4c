"""GaussianGLN's calibration: the closed-form factor on its standard deviations, fitted on
held-out data by ``calibrate``, set through ``std_scale`` and kept by checkpoints."""

import json
import zipfile

import numpy as np
import pytest

from gln_jax import GaussianGLN
from gln_jax.api.checkpoint import CheckpointError, load_checkpoint
from gln_jax.api.checkpoint_schema import STD_SCALE_KEY
from gln_jax.api.gaussian_facade import check_std_scale, std_scale_of

NOMINAL_2_SIGMA = 0.9545


def heteroscedastic(count, seed):
    """``y = sin(2 x0) + 0.5 x1 + noise`` whose standard deviation grows from 0.05 to 0.8
    along ``x2``; standardised-looking features."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, 3))
    noise = 0.05 + 0.75 / (1 + np.exp(-2 * x[:, 2]))
    y = np.sin(2 * x[:, 0]) + 0.5 * x[:, 1] + noise * rng.standard_normal(count)
    return x.astype(np.float32), y.astype(np.float32)


def trained(backend="jax", epochs=20, **kwargs):
    """A model made overconfident by many passes over few examples."""
    settings = dict(context_map_size=4, learning_rate=0.01, min_sigma_sq=1e-3)
    settings.update(kwargs)
    model = GaussianGLN(backend, [16, 16], 3, **settings)
    x, y = heteroscedastic(200, 0)
    model.fit(x, y, num_epochs=epochs, shuffle_seed=0)
    return model


def log_likelihood(y, mean, std):
    z = (y - mean) / std
    return float(np.mean(-0.5 * np.log(2 * np.pi) - np.log(std) - 0.5 * z**2))


def coverage(y, mean, std):
    return float(np.mean(np.abs(y - mean) <= 2 * std))


def weights(model):
    return [np.asarray(layer.weights) for layer in model.reference_state().layers]


def test_the_closed_form_factor_is_the_brute_force_maximiser():
    rng = np.random.default_rng(3)
    targets = rng.standard_normal((400, 2)) * np.array([0.5, 3.0])
    means = targets + rng.standard_normal((400, 2)) * np.array([0.2, 2.0])
    stds = rng.uniform(0.1, 1.0, (400, 2))
    scale = std_scale_of(targets, means, stds)
    grid = np.linspace(0.05, 10.0, 200_001)
    for c in range(2):
        z = (targets[:, c] - means[:, c]) / stds[:, c]
        ll = -np.log(grid) - 0.5 * np.mean(z**2) / grid**2  # mean LL up to a constant
        best = grid[np.argmax(ll)]
        assert abs(scale[c] - best) <= grid[1] - grid[0]
        # and it is a maximum of the real log-likelihood: a step either way loses
        for step in (0.98, 1.02):
            assert log_likelihood(targets[:, c], means[:, c], stds[:, c] * scale[c]) > (
                log_likelihood(targets[:, c], means[:, c], stds[:, c] * scale[c] * step)
            )
    # the two outputs are calibrated separately: very different factors
    assert scale[1] > 3 * scale[0]


def test_std_scale_of_refuses_what_has_no_maximiser():
    ones = np.ones((4, 1))
    with pytest.raises(ValueError, match="at least one example"):
        std_scale_of(np.zeros((0, 1)), np.zeros((0, 1)), np.zeros((0, 1)))
    with pytest.raises(ValueError, match="non-zero residual"):
        std_scale_of(ones, ones, ones)
    with pytest.raises(ValueError, match="positive stds"):
        std_scale_of(ones, 0 * ones, -ones)
    with pytest.raises(ValueError, match="positive stds"):
        std_scale_of(np.full((4, 1), np.nan), ones, ones)
    with pytest.raises(ValueError, match="overflowed"):
        std_scale_of(np.full((4, 1), 1e300), 0 * ones, np.full((4, 1), 1e-300))
    with pytest.raises(ValueError, match="one shape"):
        std_scale_of(np.ones(4), np.ones(4), np.ones(4))


@pytest.mark.heavy
def test_calibration_moves_coverage_and_likelihood_towards_nominal():
    model = trained()
    x_valid, y_valid = heteroscedastic(300, 1)
    x_test, y_test = heteroscedastic(2000, 2)
    mean, raw = model.predict(x_test, return_std=True)
    before = coverage(y_test, mean, raw), log_likelihood(y_test, mean, raw)
    assert before[0] < 0.85  # the raw standard deviations are too small here

    scale = model.calibrate(x_valid, y_valid)
    assert scale.shape == (1,) and scale.dtype == np.float64 and scale[0] > 1.2
    np.testing.assert_array_equal(model.std_scale, scale)
    calibrated_mean, calibrated = model.predict(x_test, return_std=True)
    np.testing.assert_array_equal(calibrated_mean, mean)  # the means are unchanged
    np.testing.assert_allclose(calibrated, raw * np.float32(scale[0]), rtol=1e-6)
    after = coverage(y_test, mean, calibrated), log_likelihood(y_test, mean, calibrated)
    assert abs(after[0] - NOMINAL_2_SIGMA) < abs(before[0] - NOMINAL_2_SIGMA) / 2
    assert after[1] > before[1] + 0.1

    # the validation's own likelihood is at its maximum over the factor (closed form)
    valid_mean, valid_std = model.predict(x_valid, return_std=True)
    best = log_likelihood(y_valid, valid_mean, valid_std)
    for step in (0.95, 1.05):
        assert log_likelihood(y_valid, valid_mean, valid_std * step) < best


def test_calibrate_learns_nothing_and_refits_from_the_raw_deviations():
    model = trained(epochs=3)
    x_valid, y_valid = heteroscedastic(100, 1)
    before, step = weights(model), model.step
    first = model.calibrate(x_valid, y_valid)
    for a, b in zip(weights(model), before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert model.step == step
    # a second call gives the same factor (fitted to the uncalibrated deviations)
    np.testing.assert_array_equal(model.calibrate(x_valid, y_valid), first)
    model.std_scale = 1.0  # undoes it
    raw = GaussianGLN("jax", [16, 16], 3, context_map_size=4, learning_rate=0.01, min_sigma_sq=1e-3)
    raw.state = model.state
    np.testing.assert_array_equal(
        model.predict(x_valid, return_std=True)[1], raw.predict(x_valid, return_std=True)[1]
    )


@pytest.mark.heavy
def test_a_multi_output_model_gets_one_factor_per_output():
    x, y = heteroscedastic(200, 0)
    targets = np.stack([y, 4 * y], axis=1)  # the second output's errors are 4 times larger
    model = GaussianGLN("jax", [8, 8], 3, num_outputs=2, context_map_size=2, learning_rate=0.01)
    model.fit(x, np.clip(targets, -20, 20), num_epochs=3, shuffle_seed=0)
    x_valid, y_valid = heteroscedastic(200, 1)
    valid = np.clip(np.stack([y_valid, 4 * y_valid], axis=1), -20, 20)
    scale = model.calibrate(x_valid, valid)
    mean, std = model.predict(x_valid, return_std=True)
    assert scale.shape == (2,) and std.shape == (200, 2)
    np.testing.assert_allclose(np.sqrt(np.mean(((valid - mean) / std) ** 2, axis=0)), 1, rtol=1e-5)


def test_bad_input_raises_and_leaves_the_model_unchanged():
    model = trained(epochs=2)
    x_valid, y_valid = heteroscedastic(50, 1)
    model.std_scale = 1.5
    before = weights(model)
    bad_targets = y_valid.copy()
    bad_targets[3] = np.nan
    calls = [
        (ValueError, lambda: model.calibrate(x_valid, bad_targets)),
        (ValueError, lambda: model.calibrate(x_valid, y_valid[:10])),
        (ValueError, lambda: model.calibrate(x_valid[:0], y_valid[:0])),
        (ValueError, lambda: model.calibrate(x_valid, np.full(50, 1e6, np.float32))),
        (TypeError, lambda: model.calibrate(x_valid, np.array(["a"] * 50))),
    ]
    for error, call in calls:
        with pytest.raises(error):
            call()
        np.testing.assert_array_equal(model.std_scale, [1.5])
    for value, error in (
        (0.0, ValueError),
        (-1.0, ValueError),
        (np.inf, ValueError),
        (np.nan, ValueError),
        ([1.0, 2.0], ValueError),
        (True, TypeError),
        ("2", TypeError),
    ):
        with pytest.raises(error, match="std_scale"):
            model.std_scale = value
        np.testing.assert_array_equal(model.std_scale, [1.5])
    for a, b in zip(weights(model), before, strict=True):
        np.testing.assert_array_equal(a, b)
    # the property hands out a copy
    model.std_scale[0] = 7.0
    np.testing.assert_array_equal(model.std_scale, [1.5])
    assert check_std_scale(2, 3).tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("backend", ["jax", "numpy"])
def test_the_factor_survives_save_and_load(tmp_path, backend):
    model = trained(epochs=3)
    x_valid, y_valid = heteroscedastic(100, 1)
    scale = model.calibrate(x_valid, y_valid)
    path = tmp_path / "calibrated.npz"
    model.save(path)
    assert f"{STD_SCALE_KEY}.npy" in zipfile.ZipFile(path).namelist()
    loaded = GaussianGLN.load(path, backend)
    np.testing.assert_array_equal(loaded.std_scale, scale)
    mean, std = model.predict(x_valid, return_std=True)
    loaded_mean, loaded_std = loaded.predict(x_valid, return_std=True)
    np.testing.assert_allclose(loaded_mean, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded_std, std, rtol=1e-5)
    assert scale[0] > 1.05  # so the comparison above tells a calibrated load from a raw one

    # an uncalibrated model writes no calibration member and loads with a factor of 1
    model.std_scale = 1
    plain = tmp_path / "plain.npz"
    model.save(plain)
    assert f"{STD_SCALE_KEY}.npy" not in zipfile.ZipFile(plain).namelist()
    assert load_checkpoint(plain).std_scale is None
    np.testing.assert_array_equal(GaussianGLN.load(plain, backend).std_scale, [1.0])


def _rewritten(source, target, **changes):
    """``source``'s members with ``changes`` (``None`` removes one), written to ``target``."""
    with np.load(source) as data:
        members = {key: data[key] for key in data.files}
    for key, value in changes.items():
        if value is None:
            members.pop(key)
        else:
            members[key] = value
    np.savez(target, **members)
    return target


def test_checkpoints_refuse_a_bad_or_misplaced_factor(tmp_path):
    model = trained(epochs=1)
    model.std_scale = 2.0
    good = tmp_path / "good.npz"
    model.save(good)
    key = STD_SCALE_KEY
    for value, why in (
        (np.array([0.0]), "finite and positive"),
        (np.array([np.nan]), "finite and positive"),
        (np.array([2.0, 2.0]), key),
        (np.array([2.0], np.float32), key),
    ):
        path = _rewritten(good, tmp_path / "bad.npz", **{key: value})
        with pytest.raises(CheckpointError, match=why):
            GaussianGLN.load(path)
    # a version-2 file has no calibration member: one there is unknown, refused unread
    with np.load(good) as data:
        meta = json.loads(str(data["config"][()]))
    meta["format_version"] = 2
    meta["example_size"] = meta.pop("input_size")
    meta["input_size"] = meta.pop("side_info_size")
    version_2 = np.array(json.dumps(meta))
    path = _rewritten(good, tmp_path / "v2.npz", config=version_2)
    with pytest.raises(CheckpointError, match="unexpected entries"):
        GaussianGLN.load(path)
    # without it the version-2 file loads, uncalibrated
    path = _rewritten(good, tmp_path / "v2-plain.npz", config=version_2, **{key: None})
    np.testing.assert_array_equal(GaussianGLN.load(path).std_scale, [1.0])
    # a Bernoulli checkpoint never holds one
    from gln_jax import GLN

    bernoulli = tmp_path / "bernoulli.npz"
    GLN("jax", [4, 1], 3, num_classes=2).save(bernoulli)
    path = _rewritten(bernoulli, tmp_path / "b.npz", **{key: np.array([2.0])})
    with pytest.raises(CheckpointError, match="unexpected entries"):
        GLN.load(path)
    with pytest.raises(ValueError, match="Gaussian models only"):
        from gln_jax.api.checkpoint import save_checkpoint

        checkpoint = load_checkpoint(bernoulli)
        save_checkpoint(
            tmp_path / "x.npz", checkpoint.config, checkpoint.state, std_scale=np.array([2.0])
        )
