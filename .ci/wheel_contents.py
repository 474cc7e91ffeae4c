"""Checks the file list of a built wheel against the checkout: ``python wheel_contents.py WHEEL``.

Every module and data file of the packages (``gln_jax`` and the ports under ``ports/``: ``.py``,
the kernel's ``.cc``/``.h``, ``py.typed``) must be in the wheel, and nothing of the tests,
notebooks or CI. Prints a summary: files and bytes per top-level folder, the kernel's sources,
and whether ``gln_jax/tools/`` ships.
"""

from __future__ import annotations

import collections
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Package folder in the checkout -> its path in the wheel (see [tool.setuptools.packages]).
PACKAGES = {
    ROOT / "gln_jax": "gln_jax",
    **{path: path.name for path in sorted((ROOT / "ports").glob("gln_*")) if path.is_dir()},
}
SHIPPED_SUFFIXES = {".py", ".cc", ".h", ".typed"}
FORBIDDEN = ("tests/", "notebooks/", "benchmarks/", "examples/", ".ci/", "conftest.py")


def expected() -> set[str]:
    """The wheel paths of every package file in the checkout."""
    names = set()
    for folder, target in PACKAGES.items():
        for path in folder.rglob("*"):
            shipped = path.suffix in SHIPPED_SUFFIXES and "__pycache__" not in path.parts
            if shipped and path.is_file():
                names.add(f"{target}/{path.relative_to(folder).as_posix()}")
    return names


def main() -> None:
    wheel = Path(sys.argv[1])
    with zipfile.ZipFile(wheel) as archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
    names = {info.filename for info in infos}

    sizes = collections.Counter()
    counts = collections.Counter()
    for info in infos:
        parts = info.filename.split("/")
        top = "/".join(parts[:2]) if parts[0] == "gln_jax" and len(parts) > 2 else parts[0]
        counts[top] += 1
        sizes[top] += info.file_size
    print(f"{wheel.name}: {len(infos)} files, {sum(sizes.values())} bytes uncompressed")
    for top in sorted(counts):
        print(f"  {top:32s} {counts[top]:3d} files {sizes[top]:8d} bytes")
    kernel = sorted(Path(n).name for n in names if n.startswith("gln_jax/core/kernel/"))
    print("  kernel sources:", ", ".join(n for n in kernel if not n.endswith(".py")) or "NONE")
    tools = sorted(n for n in names if n.startswith("gln_jax/tools/"))
    print(f"  gln_jax/tools/ in the wheel: {'yes' if tools else 'no'} ({len(tools)} files)")

    missing = sorted(expected() - names)
    forbidden = sorted(n for n in names if any(f in n for f in FORBIDDEN))
    for name in missing:
        print(f"MISSING from the wheel: {name}")
    for name in forbidden:
        print(f"NOT FOR the wheel: {name}")
    if missing or forbidden:
        sys.exit(1)
    print("wheel contents OK")


if __name__ == "__main__":
    main()
