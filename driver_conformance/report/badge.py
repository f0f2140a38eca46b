"""A status badge for a driver's README: an SVG, and the shields.io endpoint JSON.

The SVG is drawn here rather than fetched from a badge service so that a
badge can be published from CI as a file, with no network and no third
party seeing the result.  The endpoint JSON is for projects that prefer
shields.io to draw it (``https://img.shields.io/endpoint?url=...``).
"""

from __future__ import annotations

import html
from typing import Any

from driver_conformance.report import COMPLIANT, NON_COMPLIANT
from driver_conformance.report import data as report_data
from driver_conformance.report.data import Document

COLOURS = {COMPLIANT: "#4c1", NON_COMPLIANT: "#e05d44"}
UNKNOWN_COLOUR = "#9f9f9f"
#: shields.io named colours for the endpoint format.
SHIELDS_COLOURS = {COMPLIANT: "brightgreen", NON_COMPLIANT: "red"}
DEFAULT_LABEL = "oslo.messaging conformance"

# Approximate advance widths of Verdana 11px (what shields uses), enough to
# size the badge so that the text neither overflows nor floats in space.
_NARROW = set("fijlrtI.,:;!'|() ")
_WIDE = set("mwMW@%")


def text_width(text: str) -> float:
    """Estimated width in pixels of ``text`` at 11px Verdana."""
    width = 0.0
    for ch in text:
        if ch in _NARROW:
            width += 3.9
        elif ch in _WIDE:
            width += 10.5
        elif ch.isupper() or ch.isdigit():
            width += 7.6
        else:
            width += 6.6
    return width


def badge_message(doc: Document) -> str:
    """``compliant``, ``non-compliant`` or ``unknown``; ``certified`` when it is."""
    if doc["verdict"] == COMPLIANT and doc["certification"].get("certified"):
        return "certified compliant"
    return doc["verdict"]


def shields_endpoint(doc: Document, label: str = DEFAULT_LABEL) -> dict[str, Any]:
    """The shields.io endpoint document (``schemaVersion`` 1) for ``doc``."""
    return {
        "schemaVersion": 1,
        "label": label,
        "message": badge_message(doc),
        "color": SHIELDS_COLOURS.get(doc["verdict"], "lightgrey"),
    }


def render_badge(doc: Document, label: str = DEFAULT_LABEL) -> str:
    """A flat SVG badge ``label | verdict``, coloured by the verdict."""
    message = badge_message(doc)
    colour = COLOURS.get(doc["verdict"], UNKNOWN_COLOUR)
    left = round(text_width(label) + 12)
    right = round(text_width(message) + 12)
    total = left + right
    title = f"{label}: {message} ({report_data.label(doc)})"
    esc = html.escape
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{esc(title)}">'
        f"<title>{esc(title)}</title>"
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        '<g clip-path="url(#r)">'
        f'<rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" '
        'font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{left / 2:g}" y="15" fill="#010101" fill-opacity=".3">{esc(label)}</text>'
        f'<text x="{left / 2:g}" y="14">{esc(label)}</text>'
        f'<text x="{left + right / 2:g}" y="15" fill="#010101" fill-opacity=".3">'
        f"{esc(message)}</text>"
        f'<text x="{left + right / 2:g}" y="14">{esc(message)}</text>'
        "</g></svg>\n"
    )
