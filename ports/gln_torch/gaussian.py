"""The Gaussian neuron family in PyTorch: a transliteration of :mod:`gln_jax.core.gaussian`.

Read the reference's docstring for the maths. Every function takes a leading batch axis ``B``
(one example is a batch of one) and one output's weights ``[K, R, I]`` per layer;
:func:`batch_update` writes into the weight tensors it is given (callers pass clones).
"""

from __future__ import annotations

import torch

from gln_jax.core.gaussian_types import GaussianConfig


def append_bias(mu: torch.Tensor, sigma_sq: torch.Tensor, config: GaussianConfig):
    """``[..., K]`` means and variances -> ``[..., K + bias_len]`` with the bias Gaussians."""
    if not config.bias_len:
        return mu, sigma_sq
    lead = mu.shape[:-1]
    bias_mu = torch.linspace(
        -config.bias_max_mu, config.bias_max_mu, config.bias_len, dtype=torch.float64
    ).to(device=mu.device, dtype=mu.dtype)
    bias_mu = bias_mu.expand(*lead, config.bias_len)
    bias_sigma_sq = torch.full(
        (*lead, config.bias_len), config.bias_sigma_sq, dtype=sigma_sq.dtype, device=mu.device
    )
    return torch.cat([mu, bias_mu], dim=-1), torch.cat([sigma_sq, bias_sigma_sq], dim=-1)


def input_gaussians(inputs: torch.Tensor, config: GaussianConfig):
    """``[..., P]`` input means -> first-layer ``(mu, sigma_sq)``, each ``[..., P + bias_len]``."""
    return append_bias(inputs, torch.full_like(inputs, config.input_sigma_sq), config)


def _precision_terms(mu_in: torch.Tensor, sigma_sq_in: torch.Tensor):
    a = 1.0 / sigma_sq_in
    b = a * mu_in
    return a, b, torch.sum(a * b, dim=-1), torch.sum(a * a, dim=-1)


def neurons(active, mu_in, sigma_sq_in, config: GaussianConfig):
    """``active [B, K, I]``, inputs ``[B, I]`` -> ``(mu, sigma_sq, inside)``, each ``[B, K]``."""
    a, b, ab, aa = _precision_terms(mu_in, sigma_sq_in)
    s = torch.sum(active * a[:, None, :], dim=-1)
    s_proj = torch.clamp(s, 1.0 / config.max_sigma_sq, 1.0 / config.min_sigma_sq)
    m = torch.sum(active * b[:, None, :], dim=-1) + (s_proj - s) * (ab / aa)[:, None]
    return m / s_proj, 1.0 / s_proj, s == s_proj


def gradient(mu_in, sigma_sq_in, mu, sigma_sq, inside, target):
    """Closed-form gradient ``[B, K, I]`` of each neuron's loss (targets ``[B]``)."""
    a, b, ab, aa = _precision_terms(mu_in, sigma_sq_in)
    t = target[:, None]
    error = mu - t
    free = 0.5 * ((t - mu) * (t + mu) - sigma_sq)
    coefficient = torch.where(inside, free, -error * (ab / aa)[:, None])
    return error[..., None] * b[:, None, :] + coefficient[..., None] * a[:, None, :]


def forward(weights, mu0, sigma_sq0, contexts, *, config: GaussianConfig):
    """Forward pass of one output on a batch (weights per layer ``[K, R, I]``, contexts
    ``[B, K]`` int64): per layer the inputs, outputs and active rows."""
    inputs, outputs, rows = [], [], []
    mu, sigma_sq = mu0, sigma_sq0
    for w, ctx in zip(weights, contexts, strict=True):
        neuron = torch.arange(w.shape[0], device=w.device)[None, :]
        active = w[neuron, ctx]  # [B, K, I]
        out = neurons(active, mu, sigma_sq, config)
        inputs.append((mu, sigma_sq))
        outputs.append(out)
        rows.append(active)
        mu, sigma_sq = append_bias(out[0], out[1], config)
    return inputs, outputs, rows


@torch.no_grad()
def batch_update(weights, mu0, sigma_sq0, contexts, targets, learning_rates, *, config):
    """Batch update of one output, in place on ``weights``; returns the predictions ``[B, 2]``."""
    inputs, outputs, _ = forward(weights, mu0, sigma_sq0, contexts, config=config)
    for w, (mu_in, s_in), out, ctx in zip(weights, inputs, outputs, contexts, strict=True):
        g = gradient(mu_in, s_in, *out, targets)
        neuron = torch.arange(w.shape[0], device=w.device)[None, :].expand_as(ctx)
        w.index_put_((neuron, ctx), -learning_rates[:, None, None] * g, accumulate=True)
        w[neuron, ctx] = torch.clamp(
            w[neuron, ctx], -config.weight_clipping, config.weight_clipping
        )
    mu, sigma_sq, _ = outputs[-1]
    return torch.stack([mu[:, 0], sigma_sq[:, 0]], dim=-1)
