"""Keeping credentials out of reports.

Every string that goes into a report passes through :class:`Redactor`:
transport URLs are masked with :func:`driver_conformance.urls.mask_url`, and
the passwords of the run's own URLs are also replaced wherever they appear
literally.  The second step is what makes a report safe to publish: a driver's
exception message may quote its password outside any URL ("authentication
failed for user guest with password ..."), and a failure message is exactly
what a report shows.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

from driver_conformance.urls import mask_url

MASK = "***"
#: Passwords shorter than this are masked inside URLs only: replacing a
#: two-letter password everywhere would mangle the whole report while
#: protecting nothing a reader could not guess.
MIN_LITERAL_SECRET = 4

# user:password@ after the scheme or after a comma (multi-host URLs).  The
# password runs to the *last* '@' before the host part, as urlsplit reads it.
_USERINFO = re.compile(r"(?:://|,)[^:/@?#,]*:(?P<password>[^/?#,]*)@")


def passwords_in(url: str) -> set[str]:
    """Every password in ``url``, as written and percent-decoded."""
    found: set[str] = set()
    for match in _USERINFO.finditer(url):
        found.add(match.group("password"))
    try:
        parts = urllib.parse.urlsplit(url)
        # urlsplit knows one host only; a multi-host URL is left to the regex.
        parsed = parts.password if "," not in parts.netloc else None
    except ValueError:
        parsed = None
    if parsed:
        found.add(parsed)
    found |= {urllib.parse.unquote(p) for p in found}
    return {p for p in found if p}


class Redactor:
    """Masks URLs and known passwords in strings and nested JSON data."""

    def __init__(self, urls: Iterable[str] = ()) -> None:
        secrets: set[str] = set()
        for url in urls:
            if url:
                secrets |= passwords_in(url)
        # Longest first, so that a password containing another is masked whole.
        self.secrets = sorted((s for s in secrets if len(s) >= MIN_LITERAL_SECRET),
                              key=len, reverse=True)

    def text(self, value: str) -> str:
        """``value`` with URLs masked and every known password replaced by ``***``."""
        # Literal passwords first: a password containing '@' would otherwise be
        # cut in two by the URL mask and leave its tail behind.
        for secret in self.secrets:
            value = value.replace(secret, MASK)
        return mask_url(value)

    def data(self, value: Any) -> Any:
        """A copy of JSON-like ``value`` with :meth:`text` applied to every string, keys too."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value
