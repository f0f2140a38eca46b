"""Transport URLs: passwords never survive masking, whatever they contain."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from driver_conformance.urls import mask_url, network_hosts, scheme_of

password_chars = string.ascii_letters + string.digits + "@,:!$%^&*()-_=+[]{};<>|~."


@given(user=st.text(string.ascii_letters, min_size=1, max_size=8),
       password=st.text(password_chars, min_size=6, max_size=20).filter(
           lambda p: p.strip("@,:") == p and not p.startswith("*")),
       hosts=st.integers(1, 3))
def test_password_never_survives(user: str, password: str, hosts: int) -> None:
    netloc = ",".join(f"{user}:{password}@h{i}:5672" for i in range(hosts))
    url = f"rabbit://{netloc}/vhost"
    # A password that is a piece of what stays visible cannot be told apart.
    visible = "rabbit://" + ",".join(f"{user}:***@h{i}:5672" for i in range(hosts)) + "/vhost"
    assume(password not in visible)
    masked = mask_url(url)
    assert password not in masked
    assert masked.startswith(f"rabbit://{user}:***@")


@pytest.mark.parametrize(("url", "masked"), [
    ("rabbit://guest:s3cret@127.0.0.1:5672/", "rabbit://guest:***@127.0.0.1:5672/"),
    ("rabbit://a:b@h1:1,c:d@h2:2/vh", "rabbit://a:***@h1:1,c:***@h2:2/vh"),
    ("fake://", "fake://"),
    ("rabbit://user@host/", "rabbit://user@host/"),
    ("see rabbit://u:pw@h/ now", "see rabbit://u:***@h/ now"),
])
def test_examples(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_scheme_and_hosts() -> None:
    assert scheme_of("kombu+memory:////") == "kombu"
    assert network_hosts("rabbit://u:p@h1:1,u:p@h2/") == [("h1", 1), ("h2", None)]
    assert network_hosts("reference:///vh") == []
