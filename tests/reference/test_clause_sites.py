"""Catalog -> scenario -> reference, one step each way: the ``# clause:`` sites.

The reference driver marks where it implements a clause with a comment
``# clause: <id>[, <id>...]`` (text after the ids, in parentheses, explains
the site).  These tests keep the marks honest: an id that is not in the
catalog fails, and a clause of the catalog with no site is either listed
below as a property of the whole driver or fails, so a new clause has to be
placed (or explained) when it is added.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from driver_conformance.catalog import load_catalog

REFERENCE = Path(__file__).resolve().parents[2] / "driver_conformance" / "reference"
#: ``# clause:`` and everything up to an explanation in parentheses.
MARK = re.compile(r"(?<!`)#\s*clause:\s*([^(]*)")
ID = re.compile(r"[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)+")

#: Clauses with no one implementing site, because they hold by how the whole
#: driver is built rather than by a line that could carry the mark, each with
#: the reason.  Empty today: even the driver-wide ones (thread safety, copies)
#: have a place where the decision is made, and are marked there.
WHOLE_DRIVER: dict[str, str] = {}


def clause_sites() -> dict[str, list[str]]:
    """``{clause id: ["file.py:line", ...]}`` for every mark in the reference package."""
    sites: dict[str, list[str]] = {}
    for path in sorted(REFERENCE.glob("*.py")):
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            match = MARK.search(line)
            if match is None:
                continue
            named = [part.strip() for part in match.group(1).split(",") if part.strip()]
            assert named, f"{path.name}:{number}: '# clause:' names no id"
            for token in named:
                assert ID.fullmatch(token), f"{path.name}:{number}: {token!r} is not a clause id"
                sites.setdefault(token, []).append(f"{path.name}:{number}")
    return sites


def test_every_mark_names_a_catalog_clause() -> None:
    known = set(load_catalog().ids())
    unknown = {cid: where for cid, where in clause_sites().items() if cid not in known}
    assert not unknown, f"'# clause:' names ids the catalog does not have: {unknown}"


def test_every_catalog_clause_has_a_site_or_is_a_whole_driver_property() -> None:
    sites = clause_sites()
    ids = load_catalog().ids()
    missing = [cid for cid in ids if cid not in sites and cid not in WHOLE_DRIVER]
    assert not missing, f"catalog clauses with no '# clause:' site in the reference: {missing}"
    stale = [cid for cid in WHOLE_DRIVER if cid in sites or cid not in ids]
    assert not stale, f"WHOLE_DRIVER lists clauses that have a site or no longer exist: {stale}"


def test_the_checker_rejects_what_it_should(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "x.py"
    module.write_text("a = 1  # clause: send.no-such-clause (explained)\n"
                      "b = 2  # clause: driver.cleanup.blocks, "
                      "driver.cleanup.releases-resources\n")
    monkeypatch.setattr(f"{__name__}.REFERENCE", tmp_path)
    sites = clause_sites()
    assert sites == {"send.no-such-clause": ["x.py:1"], "driver.cleanup.blocks": ["x.py:2"],
                     "driver.cleanup.releases-resources": ["x.py:2"]}
    with pytest.raises(AssertionError, match=r"send\.no-such-clause"):
        test_every_mark_names_a_catalog_clause()
    module.write_text("a = 1  # clause: Not An Id\n")
    with pytest.raises(AssertionError, match="is not a clause id"):
        clause_sites()
