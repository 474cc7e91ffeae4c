"""The ports take the reference's dense-versus-gather rule and agree on both of its branches."""

from __future__ import annotations

import numpy as np
import pytest

import gln_jax
from gln_jax import make_config
from gln_jax.core import types

from .port_harness import PORTS, assert_close, base_inputs, clean_examples, params

RULED = PORTS  # every port switches on the rule


@pytest.mark.parametrize("backend", params(RULED))
@pytest.mark.parametrize("context_map_size", [2, 7])  # dense for batches / always gathered
def test_ports_follow_the_rule_and_match_on_both_branches(
    x64, backend, context_map_size, monkeypatch
):
    import jax

    config = make_config(
        [4, 3, 1], 8, context_map_size=context_map_size, num_classes=3, dtype="float64"
    )
    reference = jax.tree.map(np.asarray, gln_jax.init(jax.random.key(6), config))
    rng = np.random.default_rng(7)
    layers = tuple(  # every row different: a wrong row would show
        layer._replace(weights=rng.uniform(-1, 1, layer.weights.shape))
        for layer in reference.layers
    )
    reference = reference._replace(layers=layers)
    side = clean_examples(reference, rng, 5, dtype="float64")
    inputs = base_inputs(rng, 5, 8, dtype="float64")
    expected = np.asarray(gln_jax.batch_apply(reference, inputs, side, config=config))
    network = backend.module("network")
    calls = []

    def spy(rows, batch=None):
        calls.append((rows, batch))
        return types.dense_scoring(rows, batch)

    monkeypatch.setattr(network, "dense_scoring", spy)
    if hasattr(network, "DENSE_BLOCK_ENTRIES"):  # NumPy scores in blocks: two examples each
        monkeypatch.setattr(network, "DENSE_BLOCK_ENTRIES", 2 * config.num_models * 4 * 4)
    state = backend.from_reference(reference)
    for count in (1, 5):  # a batch of one gathers; five examples follow the rows
        got = network.batch_apply(
            state,
            backend.to_native(inputs[:count]),
            backend.to_native(side[:count]),
            config=config,
        )
        assert_close(backend.to_numpy(got), expected[:count], "float64", f"batch of {count}")
    assert (config.num_contexts, 1) in calls and (config.num_contexts, 5) in calls
