"""Saliency: the affine map a GLN computes on one example, in closed form.

Once an example is fixed, so are its gates: every neuron uses one weight row, and in logit
space a neuron outputs ``clip(w_c . x, -L, L)`` with ``L = logit(1 - eps)`` (the clip of
``sigmoid`` into ``[eps, 1 - eps]``, seen through ``logit``). Where no neuron is clipped the
whole network is therefore linear in the logits of its base predictions: the active rows
collapse into one weight vector per class (the product of the active weight matrices, first
layer last), and the bias inputs collapse into one constant,

    ``logit(p_out[c]) = weights[c] . logit(base_predictions) + bias[c]``.

``weights[c]`` is the saliency map of class ``c``: how much each base prediction's logit
pushes that class's output logit up or down on this example.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gln_jax.core import multiclass, numerics
from gln_jax.core.gating import context_indices
from gln_jax.core.network import base_predictions
from gln_jax.core.shapes import ArrayLike, Real
from gln_jax.core.types import GLNConfig, GLNState

_HIGHEST = jax.lax.Precision.HIGHEST  # no TF32/bf16 passes: the map should match the network


class Saliency(NamedTuple):
    """The affine map from input logits to output logits of a GLN on one example.

    Attributes:
        weights: ``[C, P]`` one collapsed weight vector per class (the saliency map),
            ``P = config.base_prediction_size``.
        bias: ``[C]`` the constant term: the bias inputs' contributions, carried through the
            network (zero when ``config.bias`` is false and no clipped neuron is frozen).
        num_clipped: ``[C]`` int32, how many neurons of each class's model have their output
            at the clip ``[eps, 1 - eps]`` on this example. Where it is 0 the map reproduces
            ``logit(p_out)`` exactly, whatever ``local`` is.
    """

    weights: jax.Array
    bias: jax.Array
    num_clipped: jax.Array


jax.export.register_namedtuple_serialization(Saliency, serialized_name="gln_jax.Saliency")


def _model_saliency(weights, x0, contexts, *, config: GLNConfig, local: bool):
    """Collapsed affine map of one binary model on one example.

    Args:
        weights: per layer ``[K_l, R, I_l]``.
        x0: ``[K_0]`` logits of the base predictions.
        contexts: per layer ``[K_l]`` context indices.
        config: the network's config.
        local: freeze clipped neurons (see :func:`saliency`).

    Returns:
        ``(weights [K_0], bias [], num_clipped [])``.
    """
    extra = 1 if config.bias else 0
    bias_input = jnp.ones((extra,), x0.dtype)  # the constant input appended last, logit 1.0
    x = jnp.concatenate([x0, bias_input])
    jac = offset = None  # d pre-activation / d input logits [K_l, K_0]; constant part [K_l]
    num_clipped = jnp.zeros((), jnp.int32)
    for w, ctx in zip(weights, contexts, strict=True):
        active = w[jnp.arange(w.shape[0]), ctx]  # [K_l, I_l]
        linear = active[:, : active.shape[1] - extra]  # [K_l, K_{l-1}]
        constant = active[:, -1] if extra else jnp.zeros(active.shape[:1], active.dtype)
        if jac is None:
            jac, offset = linear, constant
        else:
            jac = jnp.matmul(linear, jac, precision=_HIGHEST)
            offset = jnp.matmul(linear, offset, precision=_HIGHEST) + constant
        raw = numerics.sigmoid(jnp.sum(active * x[None, :], axis=-1))
        p = numerics.clip_probability(raw, config.pred_clipping)
        at_clip = raw != p  # [K_l]
        num_clipped = num_clipped + jnp.sum(at_clip, dtype=jnp.int32)
        out_logit = numerics.logit(p)
        if local:
            jac = jnp.where(at_clip[:, None], jnp.zeros_like(jac), jac)
            offset = jnp.where(at_clip, out_logit, offset)
        x = jnp.concatenate([out_logit, bias_input])
    return jac[0], offset[0], num_clipped


def saliency(
    state: GLNState,
    inputs: Real[ArrayLike, " P"],
    side_info: Real[ArrayLike, " N"],
    *,
    config: GLNConfig,
    local: bool = False,
) -> Saliency:
    """Collapses the network on one example into one affine map per class.

    With ``z = logit(clip(inputs, eps, 1 - eps))`` the logits of the base predictions, the
    map satisfies ``logit(apply(state, inputs, side_info)[c]) == weights[c] . z + bias[c]``
    wherever ``num_clipped[c] == 0``; there ``weights[c]`` is also the gradient of that output
    logit with respect to ``z`` (the gates look at ``side_info`` only and do not move).

    By default (``local=False``) clipping is ignored: ``weights[c]`` is the product of the
    active weight matrices, the linear part of the gated network, and is informative even
    on examples the model is sure about (where the output neuron sits at its clip). With
    ``local=True`` a clipped neuron counts as the constant it outputs, so the map is the exact
    local affine map of the network (its gradient, zero through clipped neurons) and
    reproduces the output logit on every example.

    Pure and jit-able (bind ``config`` and ``local`` first); vmap it for a batch.

    Args:
        state: the GLN state.
        inputs: ``[P]`` base probabilities (see :func:`gln_jax.base_predictions`).
        side_info: ``[N]`` raw example, looked at by the gates.
        config: the network's config.
        local: freeze clipped neurons instead of ignoring their clip.

    Returns:
        A :class:`Saliency` with ``weights [C, P]``, ``bias [C]`` and ``num_clipped [C]``,
        ``C = config.num_models`` (1 for a binary model).

    Example:
        >>> s = saliency(state, x, x, config=config)  # doctest: +SKIP
        >>> s.weights.shape  # doctest: +SKIP
        (10, 784)
    """
    contexts = context_indices(state.layers, side_info, config=config)
    x0 = numerics.logit(base_predictions(inputs, config=config))
    model_saliency = functools.partial(_model_saliency, local=local)
    collapse = multiclass.over_classes(model_saliency, (0, None, 0), config=config)
    weights = tuple(layer.weights for layer in state.layers)
    return Saliency(*collapse(weights, x0, contexts))
