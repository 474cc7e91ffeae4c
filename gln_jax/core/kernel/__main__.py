"""Builds the fused CPU kernel ahead of time, or says whether it is in use.

``python -m gln_jax.core.kernel build`` compiles the kernel into the per-user cache (for a
container image or a notebook's first cell, so that the first fit does not wait for the
compiler), prints where it went and the status, and exits non-zero with the compiler's
messages when the build fails. ``python -m gln_jax.core.kernel status`` prints the status
without building anything (``--build`` builds and loads first, as a first fit would).

Example:
    .. code-block:: console

        $ python -m gln_jax.core.kernel build
        built /home/me/.cache/gln_jax/kernels/gln_online_3f2a....so
        fused CPU kernel: in use
        ...
"""

from __future__ import annotations

import argparse
import sys

from gln_jax.core import kernel
from gln_jax.core.kernel import build, library


def _build() -> int:
    if not library.enabled():
        print(
            f"note: {library.SWITCH}=0 is set; the kernel is built but this environment "
            "does not use it",
            file=sys.stderr,
        )
    try:
        path, compiled = build.build()
    except build.BuildError as err:
        print(
            f"error: the fused CPU kernel could not be built into {build.cache_dir()}: {err}\n"
            f"until it is, fits on CPU run in pure JAX ({library.SWITCH}=0 chooses that on "
            "purpose)",
            file=sys.stderr,
        )
        return 1
    print(f"{'built' if compiled else 'already built'} {path}")
    status = kernel.status(build=True)
    print(status)
    return 0 if status.in_use or not library.enabled() else 1


def _status(build_first: bool) -> int:
    print(kernel.status(build=build_first))
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line: ``build`` or ``status``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m gln_jax.core.kernel",
        description="Build the fused CPU kernel of gln_jax ahead of time, or show its status.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "build",
        help="compile the kernel into the cache (exit code 1 when the build fails)",
        description="Compile the kernel into the per-user cache ($XDG_CACHE_HOME/gln_jax/"
        "kernels) with $CXX (else c++, g++, clang++) and print where it went.",
    )
    show = commands.add_parser(
        "status", help="whether the kernel is in use, its cache and compiler, and if not, why"
    )
    show.add_argument(
        "--build", action="store_true", help="build and load the kernel first, as a fit would"
    )
    args = parser.parse_args(argv)
    if args.command == "build":
        return _build()
    return _status(args.build)


if __name__ == "__main__":
    sys.exit(main())
