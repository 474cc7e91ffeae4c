"""Measure your own machine: the speed benchmark and the accuracy protocols.

Run them as ``python -m gln_jax.benchmark`` and ``python -m gln_jax.accuracy``.
"""
