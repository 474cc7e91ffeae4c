"""The measuring scripts of ``benchmarks/`` are imported by their file names, as they import
each other when run (``python benchmarks/accelerator.py`` puts ``benchmarks/`` first on the
path)."""

import sys
from pathlib import Path

BENCHMARKS = str(Path(__file__).resolve().parents[2] / "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
