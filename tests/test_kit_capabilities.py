"""Capabilities declare only what the contract leaves optional."""

from __future__ import annotations

import dataclasses

import pytest

from driver_conformance.adapter import CALL_MONITOR_IGNORED, Capabilities


def test_only_optional_features_and_profiles_are_declarable() -> None:
    assert set(Capabilities().as_dict()) == {"rpc", "notifications", "pools", "requeue"}


@pytest.mark.parametrize("declared", [True, False])
def test_call_monitor_is_ignored_with_one_clear_warning(declared: bool) -> None:
    with pytest.warns(DeprecationWarning) as caught:
        caps = Capabilities(requeue=False, call_monitor=declared)
    assert [str(w.message) for w in caught] == [CALL_MONITOR_IGNORED]
    assert caught[0].filename == __file__, "the warning should point at the adapter's line"
    assert caps == Capabilities(requeue=False)
    assert "call_monitor" not in caps.as_dict()


def test_replace_keeps_working_without_the_old_field() -> None:
    caps = dataclasses.replace(Capabilities(), rpc=False)
    assert caps.as_dict() == {"rpc": False, "notifications": True, "pools": True,
                              "requeue": True}
