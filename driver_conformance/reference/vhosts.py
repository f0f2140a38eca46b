"""The registry of in-process brokers, one per virtual host.

A transport URL's virtual host names a broker: ``reference:///vh1`` and
``reference:///vh2`` never see each other's messages, and ``reference://``
(or ``reference:///``) is the default broker ``"/"``.  Every driver built for
the same virtual host in one process shares that broker, which is how a
client transport and a server transport talk to each other.
"""

from __future__ import annotations

import threading

import oslo_messaging
from oslo_config import cfg

from driver_conformance.reference.broker import Broker

_lock = threading.Lock()
_brokers: dict[str, Broker] = {}

DEFAULT_VHOST = "/"


def vhost_of(url: str | oslo_messaging.TransportURL | None) -> str:
    """The broker name for a transport URL (string or parsed) or a bare vhost.

    A string containing ``://`` is parsed as a URL; any other string is taken
    as a virtual host name.  None, ``""`` and ``"/"`` name the default broker.
    """
    if isinstance(url, oslo_messaging.TransportURL):
        vhost = url.virtual_host
    elif url is not None and "://" in url:
        vhost = oslo_messaging.TransportURL.parse(cfg.ConfigOpts(), url).virtual_host
    else:
        vhost = url
    return vhost or DEFAULT_VHOST


def get_broker(url: str | oslo_messaging.TransportURL | None = None) -> Broker:
    """The broker for ``url`` (a URL or a vhost name), created on first use."""
    name = vhost_of(url)
    with _lock:
        broker = _brokers.get(name)
        if broker is None:
            broker = _brokers[name] = Broker(name)
        return broker


def drop_broker(url: str | oslo_messaging.TransportURL | None = None) -> None:
    """Forget the broker for ``url``: the next :func:`get_broker` makes a new one.

    Drivers already holding the old broker keep using it (it is not closed), so
    dropping is safe while transports are still alive; only new transports are
    isolated from the old state.
    """
    with _lock:
        _brokers.pop(vhost_of(url), None)
