"""Entry point of ``python -m gln_jax.benchmark``; the tool is :mod:`gln_jax.tools.benchmark`."""

from gln_jax.tools.benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())
