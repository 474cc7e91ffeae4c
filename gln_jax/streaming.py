"""Streams larger than memory: training from an iterator of ``(X, y)`` chunks, with checkpoints.

:meth:`gln_jax.GLN.fit` accepts an iterator of chunks or ``np.memmap`` arrays and uses these
drivers; call them directly to train an engine's state without a facade. The chunks are
re-cut into pieces of at most ``chunk_size`` examples, each a multiple of ``batch_size`` from
the start of the stream, so the result equals a fit on the whole array. With
``checkpoint_every=N`` a checkpoint is written whenever the stream position reaches a multiple
of ``N``; a resumed run (``skip`` = examples already learned, the stream from
``array_chunks(X, y, start=skip)``) equals an uninterrupted one.

Example:
    >>> from gln_jax.streaming import array_chunks
    >>> model.fit(array_chunks(X, y, 4096))  # doctest: +SKIP

See :doc:`/guides/scale`.
"""

from gln_jax.api._streaming import array_chunks as array_chunks
from gln_jax.api._streaming import fit_chunks as fit_chunks
from gln_jax.api._streaming import train_chunks as train_chunks

__all__ = ["array_chunks", "fit_chunks", "train_chunks"]
