"""``python -m gln_jax``: the ``gln-jax`` command line (see :mod:`gln_jax.cli`)."""

import sys

from gln_jax.cli import main as main

if __name__ == "__main__":
    sys.exit(main())
