#!/usr/bin/env bash
# The wheel a user installs: build the sdist and the wheel, check their metadata and the wheel's
# file list, install the wheel with its dependencies from PyPI into a fresh virtual environment
# outside the checkout, and run .ci/wheel_smoke.py there, from a folder where the checkout
# cannot be imported. Needs $GLN_JAX_DATA_DIR (MNIST IDX files); `build` and `twine` installed.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout="$(pwd)"
: "${GLN_JAX_DATA_DIR:?set GLN_JAX_DATA_DIR to the MNIST IDX files}"

SECONDS=0
rm -rf dist
python3 -m build --outdir dist . >/dev/null  # the sdist, then the wheel built from the sdist
python3 -m twine check --strict dist/*
wheels=(dist/*.whl)
python3 .ci/wheel_contents.py "${wheels[0]}"
echo "wheel: built and checked in ${SECONDS} s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
SECONDS=0
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "${wheels[0]}"
echo "wheel: installed with its dependencies in ${SECONDS} s"
"$work/venv/bin/python" -m pip list --format=freeze | grep -iE '^(gln-jax|jax|jaxlib|numpy|scipy)=='

SECONDS=0
mkdir "$work/run"
cp .ci/wheel_smoke.py "$work/run/"
cd "$work/run"
# A fresh kernel cache: the kernel is compiled from the wheel's own sources.
env -u PYTHONPATH XDG_CACHE_HOME="$work/cache" "$work/venv/bin/python" wheel_smoke.py "$checkout"
"$work/venv/bin/gln-jax" --help >/dev/null
echo "wheel: smoke test in ${SECONDS} s"
