"""A scikit-learn classifier on a Gated Linear Network: ``fit``, ``partial_fit``, pipelines.

:class:`GLNClassifier` accepts features of any scale and labels of any type. Raw features go
through an online running standardisation (Welford's algorithm) before the GLN sees them:

- example ``t`` of a stream first updates the per-feature ``mean_`` and variance, then is
  standardised with the statistics of examples ``0..t``: ``z = (x - mean) / scale`` with
  ``scale = sqrt(var)`` (``1`` for a feature of zero variance);
- the gates look at ``z`` (the side information, width ``N = n_features_in_``) and the first
  layer takes ``sigmoid(z)`` as its base predictions (``P = N``);
- prediction standardises with the current statistics.

Every example's transform depends only on the examples before it, so ``partial_fit`` stays
online and a stream cut into chunks learns exactly what one pass over it learns. The GLN itself
runs on the functional API through the backend registry (``backend="jax"`` by default, any
backend of :func:`gln_jax.backend_names`); its state is kept as NumPy arrays, so the estimator
pickles and clones like any other.

This module is ``gln_jax.sklearn``; it imports scikit-learn by absolute name, so it never shadows
the real package.
"""

from __future__ import annotations

import contextlib
import functools
import numbers

import jax
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from gln_jax.api import validation
from gln_jax.api.registry import make_engine
from gln_jax.core.network import init
from gln_jax.core.types import (
    DEFAULT_CONTEXT_MAP_SIZE,
    DEFAULT_PRED_CLIPPING,
    DEFAULT_WEIGHT_CLIPPING,
    make_config,
)

#: Default layers of the estimator: two hidden layers and the output neuron.
DEFAULT_LAYER_SIZES = (32, 16, 1)
#: Default rate of the estimator: one pass over a few hundred examples must learn something,
#: so it is larger than the facade's MNIST default (1e-4).
DEFAULT_SKLEARN_LEARNING_RATE = 0.03
#: Predictions are computed in blocks of exactly this many rows (the last one padded): one
#: compiled shape, and a row's prediction never depends on how many rows came with it (a
#: matrix product over a different number of rows may sum in another order).
PREDICT_CHUNK = 256

__all__ = ["GLNClassifier", "running_standardize"]


@functools.lru_cache(maxsize=64)
def _engine(backend, config):
    """Engines are stateless: one per backend and config is reused across estimators."""
    return make_engine(backend, config)


def running_standardize(X, count, mean, m2):
    """Standardises a stream with running (Welford) statistics, example by example.

    Example ``t`` updates the statistics first and is then standardised with those of examples
    ``0..t``; the result depends only on the examples before it, so cutting a stream into
    chunks gives exactly the same values as one call.

    Args:
        X: ``[T, N]`` float64 examples.
        count: int, examples seen before ``X``.
        mean: ``[N]`` float64 running mean (not modified).
        m2: ``[N]`` float64 running sum of squared deviations from the mean (not modified).

    Returns:
        ``(z [T, N], count, mean, m2)``: the standardised stream and the updated statistics.

    Example:
        >>> z, n, mean, m2 = running_standardize(np.ones((3, 2)), 0, np.zeros(2), np.zeros(2))
        >>> z.tolist(), n, mean.tolist()
        ([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], 3, [1.0, 1.0])
    """
    mean, m2 = mean.copy(), m2.copy()
    z = np.empty_like(X)
    for t, x in enumerate(X):
        count += 1
        delta = x - mean
        mean += delta / count
        m2 += delta * (x - mean)
        z[t] = (x - mean) / _scale(m2, count)
    return z, count, mean, m2


def _scale(m2, count):
    scale = np.sqrt(np.maximum(m2, 0.0) / max(count, 1))
    return np.where(scale > 0, scale, 1.0)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # exact and overflow-free for any z


@contextlib.contextmanager
def _unchanged_on_error(estimator):
    """Restores every attribute of ``estimator`` when the block raises.

    scikit-learn's ``validate_data`` sets ``n_features_in_`` before the data is fully checked;
    restoring the whole ``__dict__`` keeps a failed call from changing anything.
    """
    saved = dict(estimator.__dict__)
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(saved)
        raise


class GLNClassifier(ClassifierMixin, BaseEstimator):
    """Gated Linear Network classifier (binary or one-vs-all), trained online.

    The raw features are standardised online (see :mod:`gln_jax.sklearn`); the standardised
    values are the side information of the gates and their sigmoids the base predictions.
    ``fit`` starts afresh and makes ``max_iter`` passes (shuffled with ``shuffle``; every pass
    continues the running statistics, which therefore keep the data's mean and variance);
    ``partial_fit`` continues the stream in the order given. With ``batch_size=1`` (default)
    every example is one exact online GLN update.

    Probabilities: a binary model has one output ``p`` and ``predict_proba`` returns
    ``[1 - p, p]``; with ``C > 2`` classes every one-vs-all model gives a sigmoid ``p_c`` and
    ``predict_proba`` returns ``p_c / sum(p)``, so rows sum to 1 and the argmax is the class of
    the largest sigmoid. ``decision_function`` returns ``logit(p)`` (``[n]`` binary,
    ``[n, C]`` multi-class), consistent with ``predict``.

    Sample weights are not supported: ``fit`` has no ``sample_weight`` argument, which is how
    scikit-learn tells meta-estimators so. A weight as a scaled learning rate would not equal
    repeating an example, as scikit-learn's checks of weighted estimators require, because an
    online update depends on the weights learned so far.

    Args:
        layer_sizes: neurons per layer; the output neuron is appended when it does not end in 1.
        context_map_size: halfspaces per neuron (``2**context_map_size`` weight rows).
        learning_rate: positive float, or a schedule ``step -> rate`` stepped once per example.
        pred_clipping: probabilities are clipped into ``[p, 1 - p]`` at every layer.
        weight_clipping: weights are clipped into ``[-w, w]``.
        bias: a constant bias input in every layer.
        context_bias: random non-zero thresholds for the gating halfspaces.
        backend: any name of :func:`gln_jax.backend_names` (``"jax"`` by default).
        random_state: seed (int, ``RandomState`` or ``None``) of the gating hyperplanes and of
            the shuffling in ``fit``.
        batch_size: examples per update (1 is exact online learning).
        max_iter: passes over the data in ``fit``.
        shuffle: shuffle the data before each pass of ``fit`` (``partial_fit`` never shuffles).
        standardize: standardise the features online (default); with ``False`` the features
            are used as they are, clipped into ``[pred_clipping, 1 - pred_clipping]`` as base
            predictions (for features already in [0, 1], as the classic interface expects).

    Attributes:
        classes_: ``[C]`` the class labels.
        n_features_in_: number of features.
        feature_names_in_: feature names, when ``X`` had string column names.
        n_samples_seen_: examples learned from (all passes counted).
        mean_: ``[N]`` running mean of the features (zeros with ``standardize=False``).
        var_: ``[N]`` running (population) variance of the features.
        scale_: ``[N]`` the standard deviations used, ``1`` where the variance is 0.
        sum_squared_deviations_: ``[N]`` Welford's running sum of squared deviations.
        config_: the :class:`~gln_jax.GLNConfig` of the network.
        state_: the :class:`~gln_jax.GLNState` of the network, NumPy arrays.
        n_iter_: passes made by the last ``fit`` (1 after ``partial_fit``).

    Example:
        >>> from sklearn.datasets import load_iris  # doctest: +SKIP
        >>> X, y = load_iris(return_X_y=True)  # doctest: +SKIP
        >>> GLNClassifier(random_state=0).fit(X, y).score(X, y)  # doctest: +SKIP
    """

    def __init__(
        self,
        layer_sizes=DEFAULT_LAYER_SIZES,
        context_map_size=DEFAULT_CONTEXT_MAP_SIZE,
        learning_rate=DEFAULT_SKLEARN_LEARNING_RATE,
        pred_clipping=DEFAULT_PRED_CLIPPING,
        weight_clipping=DEFAULT_WEIGHT_CLIPPING,
        bias=True,
        context_bias=True,
        backend="jax",
        random_state=None,
        batch_size=1,
        max_iter=1,
        shuffle=True,
        standardize=True,
    ):
        self.layer_sizes = layer_sizes
        self.context_map_size = context_map_size
        self.learning_rate = learning_rate
        self.pred_clipping = pred_clipping
        self.weight_clipping = weight_clipping
        self.bias = bias
        self.context_bias = context_bias
        self.backend = backend
        self.random_state = random_state
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.standardize = standardize

    # ------------------------------------------------------------------ scikit-learn protocol
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.non_deterministic = False
        return tags

    def fit(self, X, y):
        """Trains a fresh model: ``max_iter`` passes over ``(X, y)``.

        All or nothing: a call that raises leaves the estimator as it was.

        Args:
            X: ``[n_samples, n_features]`` features, any scale.
            y: ``[n_samples]`` labels of any type (at least two classes).

        Returns:
            ``self``.
        """
        with _unchanged_on_error(self):
            return self._fit(X, y)

    def partial_fit(self, X, y, classes=None):
        """Continues learning online from ``(X, y)`` in the order given.

        All or nothing: a call that raises leaves the estimator as it was.

        Args:
            X: ``[n_samples, n_features]`` features.
            y: ``[n_samples]`` labels, all in ``classes``.
            classes: every label the stream will hold; required on the first call (as in
                scikit-learn's other online classifiers), optional afterwards.

        Returns:
            ``self``.
        """
        with _unchanged_on_error(self):
            return self._partial_fit(X, y, classes)

    def _fit(self, X, y):
        self._check_params()
        X, y = validate_data(self, X, y, reset=True, dtype=np.float64)
        check_classification_targets(y)
        classes = unique_labels(y)
        if classes.shape[0] < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes, got {classes.shape[0]} class "
                f"in y ({classes!r})"
            )
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        fitted = self._fresh(classes, X.shape[1], seed)
        targets = np.searchsorted(classes, y)
        for _ in range(self.max_iter):
            order = rng.permutation(X.shape[0]) if self.shuffle else np.arange(X.shape[0])
            fitted = self._learn(fitted, X[order], targets[order])
        self._commit(fitted)
        self.n_iter_ = int(self.max_iter)
        return self

    def _partial_fit(self, X, y, classes):
        first = not hasattr(self, "classes_")
        if first:
            self._check_params()
            if classes is None:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit (every label "
                    "the stream will hold)"
                )
            classes = unique_labels(np.asarray(classes))
            if classes.shape[0] < 2:
                raise ValueError(
                    f"{type(self).__name__} needs at least 2 classes, got {classes.shape[0]} "
                    "class in classes"
                )
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(
                f"classes={classes!r} differs from the classes of the first call to "
                f"partial_fit, {self.classes_!r}"
            )
        X, y = validate_data(self, X, y, reset=first, dtype=np.float64)
        check_classification_targets(y)
        known = classes if first else self.classes_
        unseen = np.setdiff1d(unique_labels(y), known)
        if unseen.size:
            raise ValueError(f"y holds labels {unseen!r} that are not in classes {known!r}")
        if first:
            seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
            fitted = self._fresh(known, X.shape[1], seed)
        else:
            fitted = self._current()
        fitted = self._learn(fitted, X, np.searchsorted(known, y))
        self._commit(fitted)
        self.n_iter_ = 1
        return self

    def predict_proba(self, X):
        """Class probabilities, rows summing to 1 (see the class docstring).

        Args:
            X: ``[n_samples, n_features]``.

        Returns:
            ``[n_samples, n_classes]`` float64, columns in the order of ``classes_``.
        """
        p = self._probabilities(X)
        if p.shape[1] == 1:
            return np.concatenate([1.0 - p, p], axis=1)
        return p / p.sum(axis=1, keepdims=True)

    def decision_function(self, X):
        """``logit`` of the GLN outputs: ``[n_samples]`` (binary) or ``[n_samples, C]``."""
        p = self._probabilities(X)
        scores = np.log(p) - np.log1p(-p)
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict(self, X):
        """Predicted labels ``[n_samples]``, taken from ``classes_``."""
        p = self._probabilities(X)
        index = (p[:, 0] > 0.5).astype(np.intp) if p.shape[1] == 1 else p.argmax(axis=1)
        return self.classes_[index]

    # ------------------------------------------------------------------ internals
    def _check_params(self):
        for name in ("batch_size", "max_iter"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("shuffle", "standardize"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        validation.check_learning_rate(self.learning_rate)

    def _fresh(self, classes, n_features, seed):
        """A new model's pieces as a dict of the attributes ``_commit`` sets."""
        config = make_config(
            self.layer_sizes,
            n_features,
            context_map_size=self.context_map_size,
            num_classes=max(2, int(classes.shape[0])),
            base_prediction_size=n_features,
            bias=self.bias,
            context_bias=self.context_bias,
            pred_clipping=self.pred_clipping,
            weight_clipping=self.weight_clipping,
        )
        _engine(self.backend, config)  # an unknown or missing backend fails before any work
        state = jax.tree.map(np.asarray, init(jax.random.key(seed), config))
        return {
            "classes_": classes,
            "config_": config,
            "state_": state,
            "n_samples_seen_": 0,
            "mean_": np.zeros(n_features),
            "sum_squared_deviations_": np.zeros(n_features),
        }

    def _current(self):
        return {
            "classes_": self.classes_,
            "config_": self.config_,
            "state_": self.state_,
            "n_samples_seen_": self.n_samples_seen_,
            "mean_": self.mean_,
            "sum_squared_deviations_": self.sum_squared_deviations_,
        }

    def _commit(self, fitted):
        for name, value in fitted.items():
            setattr(self, name, value)
        self.var_ = self.sum_squared_deviations_ / max(self.n_samples_seen_, 1)
        self.scale_ = _scale(self.sum_squared_deviations_, self.n_samples_seen_)

    def _features(self, X):
        """``(base predictions, side information)`` of ``X`` with the current statistics."""
        if not self.standardize:
            return X, X
        z = (X - self.mean_) / self.scale_
        return _sigmoid(z), z

    def _learn(self, fitted, X, targets):
        """One pass over ``(X, targets)`` from ``fitted``; returns the new pieces (no commit)."""
        config = fitted["config_"]
        count, mean = fitted["n_samples_seen_"], fitted["mean_"]
        m2 = fitted["sum_squared_deviations_"]
        if self.standardize:
            z, count, mean, m2 = running_standardize(X, count, mean, m2)
            inputs, side_info = _sigmoid(z), z
        else:
            count, inputs, side_info = count + X.shape[0], X, X
        dtype = np.dtype(config.dtype)
        engine = _engine(self.backend, config)
        state = engine.from_reference(fitted["state_"])
        rates = validation.learning_rates(
            self.learning_rate, engine.step(state), X.shape[0], config.dtype
        )
        state, _ = engine.fit(
            state,
            inputs.astype(dtype),
            side_info.astype(dtype),
            targets.astype(np.int32),
            rates,
            int(self.batch_size),
        )
        return {
            **fitted,
            "state_": engine.to_reference(state),
            "n_samples_seen_": count,
            "mean_": mean,
            "sum_squared_deviations_": m2,
        }

    def _probabilities(self, X):
        """``[n, C]`` float64 GLN outputs (one column for a binary model)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        config = self.config_
        dtype = np.dtype(config.dtype)
        engine = _engine(self.backend, config)
        state = engine.from_reference(self.state_)
        inputs, side_info = self._features(X)
        inputs, side_info = inputs.astype(dtype), side_info.astype(dtype)
        out = np.empty((X.shape[0], config.num_models))
        for start in range(0, X.shape[0], PREDICT_CHUNK):
            stop = min(start + PREDICT_CHUNK, X.shape[0])
            pad = ((0, PREDICT_CHUNK - (stop - start)), (0, 0))
            probs = engine.predict(
                state, np.pad(inputs[start:stop], pad), np.pad(side_info[start:stop], pad)
            )
            out[start:stop] = np.asarray(probs)[: stop - start]
        return out
