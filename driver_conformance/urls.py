"""Transport URLs as the kit shows them: parsed once, never with a password.

Every place the kit prints, logs or stores a transport URL goes through
:func:`mask_url`, so that a password given on the command line cannot leak
into a terminal, a log file or a published report.
"""

from __future__ import annotations

import re
import urllib.parse

from oslo_config import cfg

#: ``scheme://user:password@host`` -> the password part.
_USERINFO = re.compile(r"(?P<head>://[^:/@?#]*:)(?P<password>[^@/?#]*)(?P<tail>@)")


class BadTransportURL(ValueError):
    """The URL cannot be parsed; the message is one line and carries no password."""


def mask_url(url: str) -> str:
    """``url`` with every password replaced by ``***``.

    Works on URLs with several hosts (``rabbit://u:p@h1,u:p@h2/``) because each
    ``user:password@`` run is masked, not only the first.
    """
    masked = _USERINFO.sub(r"\g<head>***\g<tail>", url)
    # Further hosts of a multi-host URL: ",user:password@".
    return re.sub(r"(,[^:,/@?#]*:)[^@,/?#]*@", r"\1***@", masked)


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
