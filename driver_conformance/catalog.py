"""The clause catalog: every obligation of the driver contract, as data.

The clauses live in ``catalog.toml`` beside this module, written once; the
scenarios name the clauses they check with ``@pytest.mark.clause("id")`` and
everything else (the ``clauses`` command, reports, the coverage test) reads
them from here.  Keeping the catalog as data rather than code means a report
reader, a docs build and a scenario all quote the same sentence.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import tomllib
from collections.abc import Iterator
from importlib import resources

#: Levels, strongest first.  OPTIONAL clauses bind only drivers that declare
#: the feature; DERIVED clauses are what the public oslo.messaging API needs
#: of a driver although the prose does not say it.
LEVELS = ("MUST", "DERIVED", "OPTIONAL", "SHOULD", "MAY")
#: Levels whose failure makes a driver non-compliant.
REQUIRED_LEVELS = frozenset({"MUST", "DERIVED", "OPTIONAL"})
#: Areas of the contract; one scenario module each.
AREAS = (
    "addressing",
    "replies",
    "timeouts",
    "retry",
    "notifications",
    "acknowledgement",
    "incoming",
    "listeners",
    "lifecycle",
    "features",
    "partitions",
)


@dataclasses.dataclass(frozen=True)
class Clause:
    """One obligation, with the sentence it comes from and why that sentence gives its level."""

    id: str
    level: str
    method: str
    area: str
    source: str
    text: str
    check: str
    #: Which word of ``text`` (must, should, may), or for DERIVED which public-API need,
    #: gives the clause its level.
    why: str
    feature: str | None = None

    @property
    def required(self) -> bool:
        """Whether failing this clause makes the driver non-compliant."""
        return self.level in REQUIRED_LEVELS


@dataclasses.dataclass(frozen=True)
class Profile:
    """A part of the contract a driver can implement and be judged on by itself."""

    name: str
    description: str
    prefixes: tuple[str, ...]

    def __contains__(self, clause_id: object) -> bool:
        return isinstance(clause_id, str) and clause_id.startswith(self.prefixes)


class UnknownClause(KeyError):
    """A scenario names a clause ID the catalog does not have."""

    def __str__(self) -> str:
        return str(self.args[0])


class Catalog:
    """Clauses by ID, in catalog order."""

    def __init__(self, clauses: list[Clause], profiles: list[Profile] | None = None) -> None:
        self._by_id: dict[str, Clause] = {}
        #: The conformance profiles, by name, in catalog order.
        self.profiles: dict[str, Profile] = {p.name: p for p in profiles or []}
        for clause in clauses:
            if clause.id in self._by_id:
                raise ValueError(f"duplicate clause id {clause.id!r} in the catalog")
            if clause.level not in LEVELS:
                raise ValueError(f"clause {clause.id!r}: level {clause.level!r} not in {LEVELS}")
            if clause.area not in AREAS:
                raise ValueError(f"clause {clause.id!r}: area {clause.area!r} not in {AREAS}")
            self._by_id[clause.id] = clause
        for profile in self.profiles.values():
            if not any(cid in profile for cid in self._by_id):
                raise ValueError(f"profile {profile.name!r} holds no clause")

    def __iter__(self) -> Iterator[Clause]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, clause_id: object) -> bool:
        return clause_id in self._by_id

    def __getitem__(self, clause_id: str) -> Clause:
        try:
            return self._by_id[clause_id]
        except KeyError:
            raise UnknownClause(
                f"unknown clause id {clause_id!r} (see `driver-conformance clauses`)"
            ) from None

    def ids(self) -> list[str]:
        return list(self._by_id)

    def profiles_of(self, clause_id: str) -> list[str]:
        """The profiles ``clause_id`` belongs to (every profile, when the catalog has none)."""
        return [p.name for p in self.profiles.values() if clause_id in p]

    def matching(self, pattern: str) -> list[Clause]:
        """Clauses whose ID matches ``pattern``: a glob, or a prefix (``send.retry``)."""
        return [
            c
            for c in self
            if fnmatch.fnmatchcase(c.id, pattern)
            or c.id == pattern
            or c.id.startswith(pattern.rstrip(".") + ".")
        ]


def parse_catalog(text: str) -> Catalog:
    data = tomllib.loads(text)
    fields = {f.name for f in dataclasses.fields(Clause)}
    required = {f.name for f in dataclasses.fields(Clause)
                if f.default is dataclasses.MISSING}
    clauses = []
    for entry in data.get("clause", []):
        unknown = set(entry) - fields
        if unknown:
            raise ValueError(f"clause {entry.get('id')!r}: unknown fields {sorted(unknown)}")
        missing = required - set(entry)
        if missing:
            raise ValueError(f"clause {entry.get('id')!r}: missing fields {sorted(missing)}")
        clauses.append(Clause(**entry))
    profiles = [Profile(p["name"], p["description"], tuple(p["prefixes"]))
                for p in data.get("profile", [])]
    return Catalog(clauses, profiles)


@functools.cache
def load_catalog() -> Catalog:
    """The catalog shipped with the kit."""
    text = resources.files("driver_conformance").joinpath("catalog.toml").read_text("utf-8")
    return parse_catalog(text)
