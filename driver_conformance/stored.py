"""A raw view of what a backend stores: what the scenarios about the stored form read.

A leaf module, as :mod:`driver_conformance.faults` is: adapters and the broker
helpers that implement a view import it without importing the adapter machinery.
"""

from __future__ import annotations


class StoredView:
    """A raw view of the notifications a backend stores, for an adapter that can offer one.

    What a listener gets back cannot show how a notification was stored: a
    driver that envelopes every version and unwraps on receipt looks the same
    as one that follows ``version``.  The scenarios about the stored form
    (``notify.envelope.by-version``) read it here, past the driver; without a
    view they end NOT RUN.  Subclass it in your adapter and return it as
    :attr:`Backend.stored`.
    """

    def stored_notifications(self, exchange: str, topic: str, *, timeout: float
                             ) -> list[bytes]:
        """The bodies stored for ``(exchange, topic)`` that no listener took, as stored.

        ``topic`` is what the driver was given (``<topic>.<priority>``).  Waits up
        to ``timeout`` seconds for the first body and returns as soon as there is
        one; [] when none came.  May take the bodies off the backend.
        """
        raise NotImplementedError
