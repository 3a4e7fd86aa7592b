"""Markdown tables for the reports and the model card."""

from __future__ import annotations


def table(header: list[str], rows: list[list], numeric: set[int] | None = None) -> list[str]:
    """Lines of a pipe table; columns in `numeric` (default: all but the first) are right-aligned."""
    numeric = set(range(1, len(header))) if numeric is None else numeric
    rule = "|" + "|".join("---:" if i in numeric else "---" for i in range(len(header))) + "|"
    return ["| " + " | ".join(header) + " |", rule] + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def size(nbytes: float) -> str:
    """Human-readable bytes (binary units): 1.5 KiB, 420.3 MiB, 1.2 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(nbytes) < 1024 or unit == "GiB":
            return f"{nbytes:,.0f} {unit}" if unit == "B" else f"{nbytes:,.1f} {unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")
