"""The reference maths in pure JAX: no I/O and no host code.

``types`` (config, state, shape letters, defaults), ``numerics`` (eps and clip arithmetic),
``gating`` (halfspace contexts), ``bernoulli`` (the neuron family: forward and closed-form
update), ``network`` (init and the per-example / batch functions over layers and classes),
``multiclass`` (one-vs-all), ``stream`` (``lax.scan`` drivers), ``saliency``.
"""
