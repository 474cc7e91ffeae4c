"""The functional API under ``jax.jit`` and ``jax.vmap``: an ensemble of GLNs trained at once.

The functional API is pure: ``gln_jax.init(key, config)`` builds a state (a pytree),
``gln_jax.update`` and ``gln_jax.apply`` take one example, and ``gln_jax.scan_update`` runs a
stream of them in a ``lax.scan``. The config is static, so it is bound with
``functools.partial`` before ``jit``; a ``vmap`` over keys then trains several models (one
per seed) in one compiled call. Data: scikit-learn's 8x8 digits, pixels scaled into [0, 1]::

    python examples/basics/functional_jit_vmap.py
    python examples/basics/functional_jit_vmap.py --models 8 --learning-rate 3e-3
"""

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits

import gln_jax


def main(argv=None) -> float:
    """Trains ``--models`` GLNs with different seeds and prints each one's test accuracy.

    Args:
        argv: command-line arguments (``None``: ``sys.argv[1:]``).

    Returns:
        The test accuracy of the ensemble (mean probabilities), a fraction.
    """
    parser = argparse.ArgumentParser(description="Functional GLNs under jit and vmap.")
    parser.add_argument("--models", type=int, default=4, help="ensemble members (seeds)")
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    X, y = load_digits(return_X_y=True)  # [1797, 64] pixels 0..16, labels 0..9
    X = jnp.asarray(X / 16, jnp.float32)  # base predictions in [0, 1], also the side information
    X_train, y_train, X_test, y_test = X[:1400], jnp.asarray(y[:1400]), X[1400:], y[1400:]

    config = gln_jax.make_config([16, 8, 1], 64, num_classes=10)  # static and hashable
    init = jax.jit(functools.partial(gln_jax.init, config=config))  # key -> state
    update = jax.jit(functools.partial(gln_jax.update, config=config))
    state = init(jax.random.key(args.seed))
    state, p = update(state, X_train[0], X_train[0], y_train[0], args.learning_rate)
    print(f"one jitted online step: p before it {p.shape}, step {int(state.step)}")

    keys = jax.random.split(jax.random.key(args.seed), args.models)
    states = jax.vmap(init)(keys)  # one state whose leaves have a leading axis E
    scan = functools.partial(gln_jax.scan_update, config=config)
    train = jax.jit(jax.vmap(scan, in_axes=(0, None, None, None, None)))
    rates = jnp.full(len(y_train), args.learning_rate)  # [T]: one rate per example
    states, online = train(states, X_train, X_train, y_train, rates)  # online: [E, T, C]

    predict = functools.partial(gln_jax.batch_apply, config=config)
    probs = jax.jit(jax.vmap(predict, in_axes=(0, None, None)))(states, X_test, X_test)
    accuracy = np.mean(np.asarray(probs).argmax(-1) == y_test, axis=1)  # [E]
    ensemble = float(np.mean(np.asarray(probs).mean(0).argmax(-1) == y_test))
    online_accuracy = np.mean(np.asarray(online).argmax(-1) == np.asarray(y_train), axis=1)
    for member in range(args.models):
        print(
            f"model {member}: online accuracy {100 * online_accuracy[member]:.2f}%, "
            f"test accuracy {100 * accuracy[member]:.2f}%"
        )
    print(f"ensemble of {args.models}: test accuracy {100 * ensemble:.2f}%")
    return ensemble


if __name__ == "__main__":
    main()
