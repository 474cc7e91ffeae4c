"""The reference maths: pure JAX functions over NamedTuple pytrees, and their stream drivers.

``types`` (config, state, shape letters, defaults, the glossary, the dense-versus-gather rule),
``numerics`` (eps and clip arithmetic), ``gating`` (hyperplane contexts), ``bernoulli`` (the
neuron family: forward and closed-form update), ``network`` (init and the per-example / batch
functions over layers and classes), ``multiclass`` (one-vs-all), ``scan`` (the ``lax.scan``
drivers), ``stream`` (the host-side chunk loop of ``fit_stream``), ``chunked`` (exact online
learning in Gram chunks), ``transforms`` (online side-information transforms), ``ensemble`` and
``sharding`` (members and classes over devices), ``saliency``, and the Gaussian family
(``gaussian_types``, ``gaussian``, ``gaussian_network``). ``kernel`` is the one part that is
not pure JAX: a fused C++ kernel of exact online learning on CPU, built on first use and
called through ``jax.ffi`` (``fit_stream`` falls back to pure JAX without it).
"""
