"""Transport URLs as the kit shows them: parsed once, never with a password.

Every place the kit prints, logs or stores a transport URL goes through
:func:`mask_url`, so that a password given on the command line cannot leak
into a terminal, a log file or a published report.
"""

from __future__ import annotations

import re
import urllib.parse

from oslo_config import cfg

#: The network location of every URL in a text: after ``://``, up to a path or a blank.
_NETLOC = re.compile(r"(?P<head>://)(?P<netloc>[^/\s?#]*)")


def _mask_userinfo(segment: str) -> str:
    """``user:password@host`` -> ``user:***@host``; the password may itself hold ``@``."""
    if "@" not in segment:
        return segment
    userinfo, host = segment.rsplit("@", 1)
    if ":" not in userinfo:
        return segment
    return f"{userinfo.split(':', 1)[0]}:***@{host}"


def _mask_netloc(match: re.Match[str]) -> str:
    netloc = match.group("netloc")
    segments = netloc.split(",")
    if all("@" in seg for seg in segments) or len(segments) == 1:
        masked = ",".join(_mask_userinfo(seg) for seg in segments)
    else:
        # A comma inside a password makes the host list ambiguous: mask every
        # character up to the last "@" rather than risk showing part of it.
        masked = _mask_userinfo(netloc)
    return match.group("head") + masked


class BadTransportURL(ValueError):
    """The URL cannot be parsed; the message is one line and carries no password."""


def mask_url(url: str) -> str:
    """``url`` (or any text holding URLs) with every password replaced by ``***``.

    Works on URLs with several hosts (``rabbit://u:p@h1,u:p@h2/``), where each
    ``user:password@`` is masked, and on passwords holding ``@`` or ``,``.
    """
    return _NETLOC.sub(_mask_netloc, url)


def scheme_of(url: str) -> str:
    """The driver name oslo.messaging loads for ``url`` (the scheme before any ``+``)."""
    scheme = urllib.parse.urlsplit(url).scheme
    return scheme.split("+")[0]


def parse_url(conf: cfg.ConfigOpts, url: str):
    """Parse ``url`` into an ``oslo_messaging.TransportURL`` or raise :class:`BadTransportURL`."""
    import oslo_messaging

    if "://" not in url:
        raise BadTransportURL(
            f"bad transport URL {mask_url(url)!r}: expected scheme://[user:pass@]host[:port]/vhost"
        )
    try:
        return oslo_messaging.TransportURL.parse(conf, url)
    except (oslo_messaging.InvalidTransportURL, ValueError) as exc:
        reason = str(exc).replace(url, mask_url(url)).splitlines()[0]
        raise BadTransportURL(f"bad transport URL {mask_url(url)!r}: {reason}") from None


def network_hosts(url: str) -> list[tuple[str, int | None]]:
    """``(host, port)`` of every host in ``url`` (several for a multi-host URL)."""
    netloc = urllib.parse.urlsplit(url).netloc
    hosts = []
    for part in netloc.split(","):
        hostport = part.rsplit("@", 1)[-1]
        if not hostport:
            continue
        if hostport.startswith("["):  # [v6]:port
            host, _, rest = hostport[1:].partition("]")
            port = rest.lstrip(":")
        else:
            host, _, port = hostport.partition(":")
        if host:
            hosts.append((host, int(port) if port.isdigit() else None))
    return hosts


def _split_netloc(netloc: str) -> list[tuple[str, str]]:
    """``[(userinfo, hostport), ...]`` for each host of a (multi-host) netloc."""
    parts = []
    for part in netloc.split(","):
        userinfo, _, hostport = part.rpartition("@")
        parts.append((userinfo, hostport))
    return parts


def rewrite_hosts(url: str, addresses: list[tuple[str, int]]) -> str:
    """``url`` with its i-th host replaced by ``addresses[i]``, credentials kept.

    The inverse of :func:`network_hosts`: what an adapter needs to point a
    driver at stand-ins for its broker hosts (the kit's fault proxies)
    without touching user names, passwords, virtual host or query.
    """
    parts = urllib.parse.urlsplit(url)
    hosts = _split_netloc(parts.netloc)
    if len(hosts) != len(addresses):
        raise ValueError(f"{len(hosts)} hosts in {mask_url(url)} but {len(addresses)} "
                         "addresses to put in")
    netloc = ",".join(
        (f"{userinfo}@" if userinfo else "") + f"{host}:{port}"
        for (userinfo, _), (host, port) in zip(hosts, addresses, strict=True))
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{query}"


def unreachable_reason(url: str, default_port: int, timeout: float = 3.0) -> str | None:
    """Why no host of ``url`` accepts a TCP connection, or None when one does.

    A broker that is down should be reported in seconds, naming the host, not
    discovered as a driver reconnecting forever inside the first scenario.
    """
    import socket

    reasons = []
    for host, port in network_hosts(url):
        try:
            with socket.create_connection((host, port or default_port), timeout=timeout):
                return None
        except OSError as exc:
            reasons.append(f"{host}:{port or default_port}: {exc.strerror or exc}")
    if not reasons:
        return None
    return f"cannot reach the backend of {mask_url(url)} ({'; '.join(reasons)})"
