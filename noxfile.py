"""One nox session per oslo.messaging series the kit supports: ``nox -s oslo16``.

oslo.messaging's driver API is private and moves between releases, so the kit
is tested against the newest release of each series its pin admits
(``oslo.messaging>=16.0,<19`` in ``pyproject.toml``).  Each session builds a new
virtualenv, installs the kit from this checkout (not editable) with that
release pinned and lets pip choose the rest, prints what pip chose, then runs
from an empty directory, as a user would:

* the suite against the reference driver (must be compliant: exit 0);
* the fake driver's lane against its shipped expectations (must match: exit 0);
* the kit's tests of its release differences (``tests/test_compat.py``);
* on the newest release only, the rabbit lane (RabbitMQ on 127.0.0.1:5672,
  which ``.ci/run`` starts); like ``.ci/run``, a real-broker lane fails only
  when it mismatches its expectations twice in a row, the first printed.

``nox -s oslo16 -- --kit-tests`` also runs the kit's own tests that need no
broker (a few minutes more).  What differs between the releases, and what the
kit does about it, is in ``driver_conformance/compat.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nox
from nox.command import CommandFailed

ROOT = Path(__file__).resolve().parent

#: Session name -> the release it pins: the newest of each series.
RELEASES = {"oslo16": "16.1.2", "oslo17": "17.3.2", "oslo18": "18.3.1"}
#: The session that also runs the rabbit lane.
NEWEST = "oslo18"

#: The conformance run's exit code when its backend cannot be reached.
EXIT_BACKEND_UNAVAILABLE = 8

nox.options.sessions = list(RELEASES)
# Every session starts from an empty virtualenv and runs only what it installed there.
nox.options.reuse_existing_virtualenvs = False
nox.options.error_on_external_run = True

ENV = {
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    # oslo.messaging's eventlet-era dependencies warn at import time; not the kit's to fix.
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
}

#: Prints the oslo libraries (and the AMQP stack) pip resolved, one line, for the log.
PRINT_RESOLVED = """
import importlib.metadata as md
names = ("oslo.", "oslo-", "oslo_", "kombu", "amqp", "stevedore")
found = {(d.metadata["Name"], d.version) for d in md.distributions()}
print("resolved:", " ".join(f"{n}=={v}" for n, v in sorted(found, key=lambda p: p[0].lower())
                             if n.lower().startswith(names)))
"""


def _conformance(session: nox.Session, driver: str, *args: str) -> None:
    session.run("pytest", f"--driver={driver}", "-p", "no:cacheprovider", "-q", *args, env=ENV)


def _real_broker_lane(session: nox.Session, driver: str, *args: str) -> None:
    """A lane against a real broker: one mismatch is retried once, a second one fails.

    Timing-dependent deviations of real brokers are listed as intermittent in
    their expectations files but can still flip; an unreachable broker is not
    retried.
    """
    lane = (driver, f"--expectations={driver}", *args)
    try:
        _conformance(session, *lane)
    except CommandFailed as failed:
        if getattr(failed, "return_code", None) == EXIT_BACKEND_UNAVAILABLE:
            raise
        session.log(f"lane {driver} did not match its expectations; running it once more")
        _conformance(session, *lane)


def _release(session: nox.Session) -> None:
    release = RELEASES[session.name]
    session.install(f"{ROOT}[test]", f"oslo.messaging=={release}", env=ENV)
    session.run("python", "-c", PRINT_RESOLVED, env=ENV, log=False)
    # Outside the checkout, so that no ini file or conftest.py of the repository
    # applies and only the installed kit is importable, as for a user.
    with tempfile.TemporaryDirectory(prefix=f"dc-{session.name}-") as workdir:
        session.chdir(workdir)
        _conformance(session, "reference")
        _conformance(session, "fake", "--expectations=fake", "-n", "4")
        session.run("pytest", "-p", "no:cacheprovider", "-q",
                    str(ROOT / "tests" / "test_compat.py"), env=ENV)
        if session.name == NEWEST:
            _real_broker_lane(session, "rabbit", "-n", "4")
        if "--kit-tests" in session.posargs:
            tests = ROOT / "tests"
            session.run("pytest", "-p", "no:cacheprovider", "-q", "-n", "2", str(tests),
                        *(f"--ignore={tests / name}" for name in
                          ("test_rabbit.py", "test_rabbit_lane.py", "test_kafka.py")), env=ENV)
        session.chdir(ROOT)


@nox.session(name="oslo16")
def oslo16(session: nox.Session) -> None:
    """oslo.messaging 16.x (16.1.2): the reference suite, the fake lane, the compat tests."""
    _release(session)


@nox.session(name="oslo17")
def oslo17(session: nox.Session) -> None:
    """oslo.messaging 17.x (17.3.2): the reference suite, the fake lane, the compat tests."""
    _release(session)


@nox.session(name="oslo18")
def oslo18(session: nox.Session) -> None:
    """oslo.messaging 18.x (18.3.1): as the others, and the rabbit lane."""
    _release(session)
