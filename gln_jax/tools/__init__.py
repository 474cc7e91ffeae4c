"""Tools around the library: the speed benchmark, the accuracy protocols and the README tables.

Run them as ``python -m gln_jax.benchmark`` and ``python -m gln_jax.accuracy``.
"""
