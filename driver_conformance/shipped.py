"""Files the kit ships, named on the command line by their stem (``--expectations=rabbit``)."""

from __future__ import annotations

from pathlib import Path


def shipped_file(value: str, directory: Path, suffix: str) -> Path | None:
    """``value`` as a path if it names a file, else the shipped ``<value><suffix>``, else None.

    A value with a slash is always a path, never a shipped name.
    """
    path = Path(value)
    if path.is_file():
        return path
    shipped = directory / f"{value}{suffix}"
    if "/" not in value and shipped.is_file():
        return shipped
    return None


def shipped_names(directory: Path, suffix: str) -> str:
    """The shipped names, for an error message: ``"fake, kafka, rabbit"`` or ``"none"``."""
    return ", ".join(sorted(p.name.removesuffix(suffix) for p in directory.glob(f"*{suffix}"))
                     ) or "none"
