"""Host side, internal: what the facades are made of (free to move; the public names are
re-exported by :mod:`gln_jax` and its public modules).

Backends and engines: ``backends`` (the one registry of backends), ``engine`` (the ``Engine``
protocol), ``jax_engine``, ``sharded_engine``, ``gaussian_engine``. Facades: ``build`` (argument
checks and the initial state), ``side_info`` (one call's arguments -> base predictions and side
information), ``runner`` (a state in one backend), ``base`` (the abstract facades),
``facade`` (``GLN``), ``gaussian_facade`` (``GaussianGLN``), ``streaming`` (streams and their
checkpoints). Checks: ``validation`` (user input), ``schedules`` (learning rates), ``memory``
(host memory). Checkpoints: ``checkpoint`` (save and load), ``checkpoint_schema`` (the format),
``npz_reader`` (the hardened reader), ``atomic_write``. ``evaluation``: the MNIST protocols.
"""
