"""README tables: the one place where the speed and accuracy tools rewrite the README."""

from __future__ import annotations


def update_readme(readme: str, table: str, start: str, end: str) -> None:
    """Replaces the text between the ``start`` and ``end`` markers of ``readme``."""
    with open(readme) as handle:
        text = handle.read()
    if start not in text or end not in text:
        raise SystemExit(f"{readme} has no {start} ... {end} block")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    with open(readme, "w") as handle:
        handle.write(f"{head}{start}\n{table}\n{end}{tail}")
