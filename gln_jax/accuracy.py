"""Entry point of ``python -m gln_jax.accuracy``; the tool is :mod:`gln_jax.tools.accuracy`."""

from gln_jax.tools.accuracy import main

if __name__ == "__main__":
    raise SystemExit(main())
