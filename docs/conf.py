"""Sphinx configuration for driver-conformance."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

project = "driver-conformance"
author = "driver-conformance developers"
extensions = ["sphinx.ext.autodoc", "clause_catalog"]
exclude_patterns = ["_build", "_generated"]
html_theme = "alabaster"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
nitpicky = False
