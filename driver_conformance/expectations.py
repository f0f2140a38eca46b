"""Expected outcomes: a driver's known deviations from the contract, by clause, as a file.

A driver rarely conforms to every clause on day one, and its CI still needs
to go red on a *new* deviation.  The expectations file, kept in the driver's
repository, lists the deviations it knows about::

    driver = "rabbit"

    [[deviation]]
    clause = "poll.stop.unblocks"
    category = "bug"                       # unsupported | bug | wont-fix
    link = "https://bugs.launchpad.net/oslo.messaging/+bug/..."
    reason = "stop() waits for a poll() to notice it; with no poll running it never returns"
    scenarios = ["listeners::test_stop_unblocks_poll_with_messages_in_hand"]
    # match = "did not return within"      # optional: a regular expression the
    #                                      # failure message must contain
    # intermittent = true    # only for deviations that depend on timing or
    #                        # partition assignment: a pass is then not "stale";
    #                        # or a list of the scenarios for which that holds

``pytest --driver=NAME --expectations=FILE`` then compares every
scenario's judgments with the file, clause by clause
(:mod:`driver_conformance.expectations_plugin`): a listed clause failing in a
listed scenario is expected; any other failure -- another clause of a listed
scenario included -- is unexpected; a listed clause that *passes* fails the
run (the file is stale, the entry should go); and a clause ID the catalog
does not know is a usage error, so a typo cannot silently excuse nothing.
``scenarios`` narrows an entry to the scenarios that fail
(``<module>::<test name>[<params>]``); an entry without it covers every
scenario of the clause.  ``match`` narrows it to failures whose message
contains the pattern, so a listed clause failing for a new reason is
unexpected too.

``driver-conformance expectations write --from REPORT.json --file FILE``
writes the file from a run's JSON report, keeping the category, link and
reason of entries that are still failing.  TOML because the standard
library reads it (:mod:`tomllib`); the writer is the small one below.

The kit ships the files for oslo.messaging's own drivers (the
``expectations`` directory beside this module), from its findings
(``docs/findings``); ``--expectations=rabbit`` names the shipped one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from driver_conformance.exitcodes import ExitCode
from driver_conformance.shipped import shipped_file, shipped_names

#: Where the kit's own expectation files live (one ``<adapter>.toml`` per driver).
SHIPPED_DIR = Path(__file__).parent / "expectations"

#: The categories of a deviation.
UNSUPPORTED = "unsupported"
BUG = "bug"
WONT_FIX = "wont-fix"
CATEGORIES = (UNSUPPORTED, BUG, WONT_FIX)

#: Scenario outcomes (as in the JSON report) that count as "still deviating".
DEVIATING = frozenset({"fail", "error", "xfail"})
#: The message pytest gives a strict xfail that passed.
XPASS_STRICT = "[XPASS(strict)]"

_TOP_KEYS = {"driver", "oslo_messaging", "deviation"}
_ENTRY_KEYS = {"clause", "category", "reason", "link", "scenarios", "intermittent", "match"}


class ExpectationsError(ValueError):
    """The file cannot be used: unreadable, malformed, or naming unknown clauses."""


@dataclasses.dataclass(frozen=True)
class Deviation:
    """One known deviation: the clause, why it deviates, and which scenarios show it."""

    clause: str
    category: str
    reason: str
    link: str = ""
    scenarios: tuple[str, ...] = ()
    #: The deviation shows in some runs only (timing, partition assignment):
    #: its scenarios are expected to fail but may pass without being stale.
    intermittent: bool = False
    #: Like ``intermittent``, for these scenarios only.
    intermittent_scenarios: tuple[str, ...] = ()
    #: A regular expression the failure's message must contain (None: any failure).
    match: str | None = None

    def matches(self, message: str) -> bool:
        """Whether a failure with ``message`` is the deviation this entry describes."""
        return self.match is None or re.search(self.match, message) is not None

    def is_intermittent(self, scenario: str) -> bool:
        return self.intermittent or scenario in self.intermittent_scenarios

    def covers(self, scenario: str) -> bool:
        """Whether the scenario keyed ``scenario`` is expected to fail under this entry."""
        return not self.scenarios or scenario in self.scenarios

    def describe(self) -> str:
        link = f" ({self.link})" if self.link else ""
        return f"[{self.category}] {self.clause}: {self.reason}{link}"


@dataclasses.dataclass
class Expectations:
    """Every deviation of one driver, by clause ID."""

    driver: str = ""
    deviations: dict[str, Deviation] = dataclasses.field(default_factory=dict)
    oslo_messaging: str = ""
    path: Path | None = None

    def for_clauses(self, clause_ids: Iterable[str]) -> list[Deviation]:
        return [self.deviations[c] for c in clause_ids if c in self.deviations]


# -- reading ----------------------------------------------------------------------------


def resolve(value: str) -> Path:
    """The file ``--expectations=value`` means: a path, or the name of a shipped file."""
    found = shipped_file(value, SHIPPED_DIR, ".toml")
    if found is None:
        raise ExpectationsError(f"--expectations={value}: no such file, and no shipped "
                                "expectations of that name (shipped: "
                                f"{shipped_names(SHIPPED_DIR, '.toml')})")
    return found


def parse(text: str, *, known_clauses: Iterable[str] | None = None,
          source: str = "<expectations>") -> Expectations:
    """Parse and validate an expectations document.

    Every problem found is reported at once, one per line, naming the entry,
    so that fixing a file takes one round trip.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ExpectationsError(f"{source}: not valid TOML: {exc}") from None
    problems: list[str] = []
    for key in sorted(set(data) - _TOP_KEYS):
        problems.append(f"unknown top-level key {key!r} "
                        f"(expected: {', '.join(sorted(_TOP_KEYS))})")
    entries = data.get("deviation", [])
    if not isinstance(entries, list):
        raise ExpectationsError(f"{source}: 'deviation' must be an array of tables "
                                "([[deviation]])")
    known = set(known_clauses) if known_clauses is not None else None
    deviations: dict[str, Deviation] = {}
    for n, entry in enumerate(entries, 1):
        where = f"deviation #{n}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: not a table")
            continue
        clause = entry.get("clause")
        if isinstance(clause, str) and clause:
            where = f"deviation #{n} ({clause})"
        else:
            problems.append(f"{where}: missing 'clause'")
            continue
        for key in sorted(set(entry) - _ENTRY_KEYS):
            problems.append(f"{where}: unknown key {key!r}")
        if known is not None and clause not in known:
            problems.append(f"{where}: unknown clause ID {clause!r} "
                            "(see `driver-conformance clauses`)")
        category = entry.get("category")
        if category not in CATEGORIES:
            problems.append(f"{where}: category must be one of {', '.join(CATEGORIES)}, "
                            f"got {category!r}")
        reason = entry.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            problems.append(f"{where}: missing 'reason'")
        link = entry.get("link", "")
        if not isinstance(link, str):
            problems.append(f"{where}: 'link' must be a string")
            link = ""
        if category == BUG and not link.strip():
            problems.append(f"{where}: a bug needs a 'link' (bug report or findings page)")
        scenarios = entry.get("scenarios", [])
        if not isinstance(scenarios, list) or not all(isinstance(s, str) for s in scenarios):
            problems.append(f"{where}: 'scenarios' must be a list of strings")
            scenarios = []
        intermittent = entry.get("intermittent", False)
        some: tuple[str, ...] = ()
        if isinstance(intermittent, list) and all(isinstance(x, str) for x in intermittent):
            some, intermittent = tuple(intermittent), False
        elif not isinstance(intermittent, bool):
            problems.append(f"{where}: 'intermittent' must be true, false or a list of "
                            "scenarios")
            intermittent = False
        match = entry.get("match")
        if match is not None:
            try:
                re.compile(str(match))
            except re.error as exc:
                problems.append(f"{where}: 'match' is not a regular expression: {exc}")
                match = None
        if clause in deviations:
            problems.append(f"{where}: clause listed twice")
        deviations[clause] = Deviation(clause=clause, category=str(category),
                                       reason=str(reason or "").strip(), link=link.strip(),
                                       scenarios=tuple(scenarios), intermittent=intermittent,
                                       intermittent_scenarios=some,
                                       match=str(match) if match is not None else None)
    if problems:
        raise ExpectationsError(f"{source}: " + "; ".join(problems))
    return Expectations(driver=str(data.get("driver", "")), deviations=deviations,
                        oslo_messaging=str(data.get("oslo_messaging", "")))


def load(path: Path | str, *, known_clauses: Iterable[str] | None = None) -> Expectations:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExpectationsError(f"cannot read expectations {path}: "
                                f"{exc.strerror or exc}") from None
    expectations = parse(text, known_clauses=known_clauses, source=str(path))
    expectations.path = path
    return expectations


# -- scenario keys ------------------------------------------------------------------------


def scenario_key(nodeid: str) -> str:
    """``<module>::<test name>[params]`` from a node ID, wherever the module lives.

    Node IDs of the installed scenarios depend on the directory pytest ran
    from (``../../venv/.../scenarios/retry.py::test_x``); the key does not.
    """
    path, sep, rest = nodeid.partition("::")
    if not sep:
        return nodeid
    return f"{Path(path).stem}::{rest}"


# -- writing --------------------------------------------------------------------------------


def _toml_string(value: str) -> str:
    # JSON's string escapes are a subset of TOML basic strings' escapes.
    return json.dumps(value, ensure_ascii=False)


HEADER = """\
# Known deviations of a driver from the oslo.messaging driver contract.
# Used by `pytest --driver=NAME --expectations=THIS_FILE`: listed scenarios are
# expected to fail; one that passes fails the run (remove its entry).
# Written by `driver-conformance expectations write --from REPORT.json`.
# category: unsupported | bug | wont-fix  (a bug needs a link)
"""


def dumps(expectations: Expectations) -> str:
    """The TOML text of ``expectations``, entries sorted by clause ID."""
    lines = [HEADER]
    if expectations.driver:
        lines.append(f"driver = {_toml_string(expectations.driver)}")
    if expectations.oslo_messaging:
        lines.append(f"oslo_messaging = {_toml_string(expectations.oslo_messaging)}")
    for clause in sorted(expectations.deviations):
        d = expectations.deviations[clause]
        lines += ["", "[[deviation]]", f"clause = {_toml_string(d.clause)}",
                  f"category = {_toml_string(d.category)}"]
        if d.link:
            lines.append(f"link = {_toml_string(d.link)}")
        lines.append(f"reason = {_toml_string(d.reason)}")
        if d.match is not None:
            lines.append(f"match = {_toml_string(d.match)}")
        if d.intermittent:
            lines.append("intermittent = true")
        elif d.intermittent_scenarios:
            lines.append("intermittent = [")
            lines += [f"    {_toml_string(k)}," for k in sorted(d.intermittent_scenarios)]
            lines.append("]")
        if d.scenarios:
            lines.append("scenarios = [")
            lines += [f"    {_toml_string(s)}," for s in sorted(d.scenarios)]
            lines.append("]")
    return "\n".join(lines) + "\n"


@dataclasses.dataclass
class Update:
    """What :func:`from_report` changed, for the command's summary."""

    expectations: Expectations
    added: list[str] = dataclasses.field(default_factory=list)
    kept: list[str] = dataclasses.field(default_factory=list)
    removed: list[str] = dataclasses.field(default_factory=list)


def deviating_scenarios(report: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """Clause ID -> ``[(scenario key, message)]`` of the scenarios that deviated in ``report``.

    A report lists, under each clause, every scenario's judgment of *that*
    clause (:mod:`driver_conformance.judging`), so a scenario of several
    clauses that failed one of them deviates for that one only.  A listed
    deviation that passed (``xpass``) no longer deviates.
    """
    if report.get("kind") not in (None, "driver-conformance-report"):
        raise ExpectationsError(f"not a driver-conformance report (kind {report.get('kind')!r})")
    clauses = report.get("clauses")
    if not isinstance(clauses, list):
        raise ExpectationsError("the report has no 'clauses' list")
    found: dict[str, list[tuple[str, str]]] = {}
    for clause in clauses:
        cid = clause.get("id")
        scenarios = clause.get("scenarios") or []
        for sc in scenarios:
            if sc.get("outcome") in DEVIATING:
                found.setdefault(cid, []).append(
                    (scenario_key(str(sc.get("nodeid", ""))), str(sc.get("message") or "")))
        if cid and not scenarios and clause.get("outcome") in DEVIATING:
            found.setdefault(cid, []).append(("", ""))
    return found


def _default_reason(messages: list[str]) -> str:
    text = next((m for m in messages if m), "deviates (see the run report)")
    text = " ".join(text.split())
    return text if len(text) <= 240 else text[:237] + "..."


def from_report(report: dict[str, Any], previous: Expectations | None = None, *,
                driver: str = "") -> Update:
    """The expectations a run's report implies, keeping what ``previous`` said of each clause.

    A clause that deviated gets an entry listing the scenarios that did; an
    entry it already had keeps its category, link and reason.  A clause
    that no longer deviates loses its entry.  New entries are category
    ``bug`` with a ``TODO`` link and the first failure message as reason,
    for a person to edit.
    """
    previous = previous or Expectations()
    run = report.get("run") or {}
    found = deviating_scenarios(report)
    update = Update(Expectations(
        driver=driver or previous.driver or str(run.get("adapter") or ""),
        oslo_messaging=str(run.get("oslo_messaging_version") or previous.oslo_messaging or ""),
    ))
    for clause, hits in sorted(found.items()):
        keys = tuple(sorted({k for k, _ in hits if k}))
        old = previous.deviations.get(clause)
        if old is not None:
            update.kept.append(clause)
            # An intermittent entry keeps the scenarios it had: a run in which
            # some of them happened to pass does not narrow it.
            if old.intermittent:
                keys = tuple(sorted(set(keys) | set(old.scenarios)))
            elif old.intermittent_scenarios:
                keys = tuple(sorted(set(keys) | set(old.intermittent_scenarios)))
            entry = dataclasses.replace(old, scenarios=keys)
        else:
            update.added.append(clause)
            entry = Deviation(clause=clause, category=BUG, link="TODO",
                              reason=_default_reason([m for _, m in hits]), scenarios=keys)
        update.expectations.deviations[clause] = entry
    for clause in sorted(set(previous.deviations) - set(found)):
        if previous.deviations[clause].intermittent:
            update.kept.append(clause)
            update.expectations.deviations[clause] = previous.deviations[clause]
        else:
            update.removed.append(clause)
    return update


# -- the command ------------------------------------------------------------------------


def _known_clauses() -> list[str]:
    from driver_conformance.catalog import load_catalog

    return load_catalog().ids()


def cmd_write(args: argparse.Namespace) -> int:
    try:
        report = json.loads(Path(args.report).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"driver-conformance expectations write: cannot read {args.report}: {exc}")
        return ExitCode.USAGE_ERROR
    target = Path(args.file)
    try:
        previous = load(target, known_clauses=_known_clauses()) if target.exists() else None
        update = from_report(report, previous, driver=args.driver or "")
    except ExpectationsError as exc:
        print(f"driver-conformance expectations write: {exc}")
        return ExitCode.USAGE_ERROR
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dumps(update.expectations), encoding="utf-8")
    print(f"{target}: {len(update.expectations.deviations)} deviations "
          f"({len(update.added)} added, {len(update.kept)} kept, "
          f"{len(update.removed)} removed)")
    for label, ids in (("added", update.added), ("removed", update.removed)):
        for cid in ids:
            print(f"  {label}: {cid}")
    if update.added:
        print("  new entries say category 'bug' and link 'TODO': edit them")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    try:
        expectations = load(resolve(args.file), known_clauses=_known_clauses())
    except ExpectationsError as exc:
        print(f"driver-conformance expectations check: {exc}")
        return ExitCode.USAGE_ERROR
    print(f"{expectations.path}: driver {expectations.driver or '?'}, "
          f"{len(expectations.deviations)} deviations")
    for d in expectations.deviations.values():
        print(f"  {d.describe()}")
    return 0


def add_parser(subparsers: Any) -> None:
    """Add ``driver-conformance expectations {write,check}`` to the kit's command."""
    parser = subparsers.add_parser(
        "expectations", help="write, update or check a driver's expected-deviations file")
    sub = parser.add_subparsers(dest="expectations_command", required=True)
    write = sub.add_parser(
        "write", help="write or update FILE from a run's JSON report (--report-json)")
    write.add_argument("--from", dest="report", required=True, metavar="REPORT.json")
    write.add_argument("--file", required=True, metavar="FILE",
                       help="the expectations file; entries already there keep their "
                            "category, link and reason")
    write.add_argument("--driver", help="driver name to record (default: the report's adapter)")
    write.set_defaults(func=cmd_write)
    check = sub.add_parser("check", help="validate FILE (a path or a shipped name)")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(func=cmd_check)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command on its own (``python -m driver_conformance.expectations``)."""
    parser = argparse.ArgumentParser(prog="driver-conformance")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
