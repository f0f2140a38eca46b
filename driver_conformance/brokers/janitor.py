"""What a run leaves on its backend, and who deletes it: one janitor per run.

Every exchange, topic, server and pool name the kit uses starts with the
run's prefix, but the drivers name some things themselves (the rabbit
driver's ``reply_<uuid>`` queues), and a run can be killed.  So cleaning a
backend needs to know the backend: a *janitor* watches every driver the run
builds (to learn the names they choose) and deletes, when the run ends,
everything of the run it can enumerate.

The janitor is chosen by the transport URL's scheme, whatever the adapter:
``pytest --transport-url=rabbit://...`` (the by-URL adapter) is cleaned like
``--driver=rabbit``.  An adapter that knows better (a private broker it
stops itself) overrides :meth:`driver_conformance.adapter.Adapter.janitor`.
A networked backend the kit cannot enumerate is said so in the run's facts
and the terminal summary, never passed over in silence.
"""

from __future__ import annotations

from typing import Any, Protocol

from driver_conformance.urls import network_hosts, scheme_of


class Janitor(Protocol):
    """Learns what a run's drivers declare, and deletes it when the run ends."""

    #: One line for the run's facts: what will be cleaned, or why nothing can be.
    description: str
    #: Whether the janitor can actually clean (False: it says why not).
    cleans: bool

    def watch(self, driver: Any) -> Any:
        """Observe ``driver`` (the names it chooses); return it, unchanged in behaviour."""

    def clean(self) -> str:
        """Delete what the run left; a one-line summary.  Never raises."""


class NothingToClean:
    """An in-process backend (or one the adapter stops itself): nothing outlives the run."""

    cleans = True

    def __init__(self, why: str) -> None:
        self.description = f"nothing to clean: {why}"

    def watch(self, driver: Any) -> Any:
        return driver

    def clean(self) -> str:
        return self.description


class CannotClean:
    """A networked backend the kit does not know how to enumerate."""

    cleans = False

    def __init__(self, scheme: str) -> None:
        self.description = (
            f"NOT cleaned: the kit cannot list what a run leaves on a {scheme!r} backend; "
            "names under the run's prefix may remain there (an adapter can provide a "
            "janitor: Adapter.janitor)")

    def watch(self, driver: Any) -> Any:
        return driver

    def clean(self) -> str:
        return self.description


def janitor_for(url: str, prefix: str) -> Janitor:
    """The janitor for a run of ``prefix`` against ``url``, by the URL's scheme."""
    if not network_hosts(url):
        return NothingToClean("an in-process backend ends with the run")
    scheme = scheme_of(url)
    if scheme in ("rabbit", "kombu"):
        from driver_conformance.brokers.rabbit import RabbitJanitor

        return RabbitJanitor(url, prefix)
    if scheme == "kafka":
        from driver_conformance.brokers.kafka import KafkaJanitor

        return KafkaJanitor(url, prefix)
    return CannotClean(scheme)
