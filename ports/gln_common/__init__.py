"""Host-side code shared by the NumPy and PyTorch ports, free of any array framework.

:mod:`gln_common.chunked` holds the Gram-chunk driver of exact online learning (the replay
policy :class:`~gln_common.chunked.Backoff`, its constants, and the layer-by-layer loop over a
chunk), parametrised by each port's :class:`~gln_common.chunked.ChunkOps`. A port imports it
by its public names; no port imports another port.
"""
