"""A learning-rate sweep in one compiled scan; the best member chosen on a validation split.

Every member starts from the same state (one key) and learns the same stream with its own rate;
:func:`gln_jax.ensemble.fit_ensemble` trains all of them at once (a ``vmap`` over the
member axis), then the validation split picks the rate::

    python examples/sweep.py
"""

import jax
import numpy as np

from gln_jax import make_config
from gln_jax import ensemble


def main() -> None:
    rng = np.random.default_rng(0)
    centers = rng.uniform(size=(3, 32))
    labels = rng.integers(0, 3, 3000)
    X = np.clip(centers[labels] + 0.6 * rng.normal(size=(3000, 32)), 0, 1).astype(np.float32)
    X_train, y_train, X_valid, y_valid = X[:2500], labels[:2500], X[2500:], labels[2500:]

    config = make_config([8, 8, 1], 32, num_classes=3)
    candidates = np.array([1e-4, 1e-3, 1e-2, 1e-1], np.float32)
    states = ensemble.init_sweep(jax.random.key(0), config, len(candidates))
    rates = np.repeat(candidates[:, None], len(y_train), axis=1)  # [E, T]
    states, _ = ensemble.fit_ensemble(states, X_train, X_train, y_train, rates, config=config)

    by_member, mean = ensemble.predict_ensemble(states, X_valid, X_valid, config=config)
    accuracy = (np.asarray(by_member).argmax(axis=-1) == y_valid).mean(axis=1)  # [E]
    for rate, acc in zip(candidates, accuracy, strict=True):
        print(f"learning rate {rate:g}: validation accuracy {acc:.3f}")
    best = int(accuracy.argmax())
    best_state = jax.tree.map(lambda a: a[best], states)  # an ordinary GLNState
    print(
        f"best rate {candidates[best]:g} (step {int(best_state.step)}); mean-logit ensemble "
        f"of all members: {(np.asarray(mean).argmax(axis=-1) == y_valid).mean():.3f}"
    )


if __name__ == "__main__":
    main()
