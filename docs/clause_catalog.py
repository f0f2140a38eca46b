"""A Sphinx extension that writes the clause catalog page from the kit itself.

The catalog is data in the package; generating the page at build time means
the documentation can never disagree with what the kit checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _row(*cells: str) -> str:
    return "   * - " + "\n     - ".join(cells)


def write_catalog_page(app: Any) -> None:
    from driver_conformance.catalog import AREAS, load_catalog

    catalog = load_catalog()
    lines = [
        ".. This page is generated from driver_conformance/catalog.toml; do not edit.",
        "",
        "Clause catalog",
        "==============",
        "",
        f"The kit checks {len(catalog)} clauses. Levels: MUST, SHOULD and MAY as in the",
        "contract; OPTIONAL for a feature a driver may declare unsupported; DERIVED for what",
        "the public oslo.messaging API needs of a driver although the prose does not say it.",
        "Each clause says why it has its level: the modal word of the sentence it quotes, or",
        "for DERIVED the public-API need.",
        "",
    ]
    for area in AREAS:
        clauses = [c for c in catalog if c.area == area]
        if not clauses:
            continue
        title = area.capitalize()
        lines += [title, "-" * len(title), "", ".. list-table::", "   :header-rows: 1",
                  "   :widths: 30 10 60", "", _row("ID", "Level", "Clause")]
        for c in clauses:
            text = c.text.replace("*", r"\*").replace("`", "'")
            check = c.check.replace("*", r"\*").replace("`", "'")
            why = c.why.replace("*", r"\*").replace("`", "'")
            lines.append(_row(f"``{c.id}``", c.level,
                              f"{text} ({c.method}, {c.source}) *Why {c.level}:* {why} "
                              f"*Checked by:* {check}"))
        lines.append("")
    Path(app.srcdir, "clauses.rst").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_exit_codes(app: Any) -> None:
    """``_generated/exit-codes.rst``: the exit-code table, from ``exitcodes.py``."""
    from driver_conformance.exitcodes import EXPECTATIONS_MEANINGS, MEANINGS

    lines = [".. Generated from driver_conformance/exitcodes.py; do not edit.", "",
             ".. list-table::", "   :header-rows: 1", "   :widths: 8 52 40", "",
             _row("code", "meaning", "with ``--expectations``")]
    for code, meaning in MEANINGS.items():
        lines.append(_row(str(int(code)), meaning, EXPECTATIONS_MEANINGS.get(code, "")))
    out = Path(app.srcdir, "_generated")
    out.mkdir(exist_ok=True)
    (out / "exit-codes.rst").write_text("\n".join(lines) + "\n", encoding="utf-8")


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", write_catalog_page)
    app.connect("builder-inited", write_exit_codes)
    return {"parallel_read_safe": True}
