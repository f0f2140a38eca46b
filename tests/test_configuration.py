"""The configuration a driver is built with: the user's files, the adapter's overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from oslo_config import cfg

from driver_conformance.configuration import (
    SHIPPED_DIR,
    ConfigFileError,
    Override,
    base_conf,
    fingerprint,
    judged_configuration,
    options_set_in,
    resolve_config_file,
    unapplied_overrides,
)

OWN = [cfg.FloatOpt("dispatch_interval", default=1.0), cfg.StrOpt("token", secret=True)]


def register_own_group(conf: cfg.ConfigOpts) -> None:
    """What a driver's __init__ does: register its own group."""
    conf.register_opts(OWN, group="memqueue")


def test_an_override_of_a_drivers_own_group_applies_when_it_registers() -> None:
    conf = base_conf({"memqueue": {"dispatch_interval": 0.01}})
    assert conf.unapplied() == [("memqueue", "dispatch_interval")]
    register_own_group(conf)
    assert conf.memqueue.dispatch_interval == 0.01
    assert unapplied_overrides(conf, "x") is None


def test_an_override_never_registered_is_named() -> None:
    conf = base_conf({"memqeue": {"dispatch_interval": 0.01}})
    register_own_group(conf)
    problem = unapplied_overrides(conf, "mine")
    assert problem and "[memqeue] dispatch_interval" in problem and "memqueue" in problem


def test_user_files_are_judged_and_speed_overrides_applied_on_top(tmp_path: Path) -> None:
    mine = tmp_path / "my.conf"
    mine.write_text("[DEFAULT]\ntransport_url = rabbit://u:s3cret@h/\n"
                    "[memqueue]\ndispatch_interval = 5\ntoken = hunter2\n")
    overrides = {"memqueue": {"dispatch_interval": Override(0.01, "fast under test")},
                 "DEFAULT": {"rpc_response_timeout": Override(7, "kept?", True)}}
    conf = base_conf(overrides, [mine])
    register_own_group(conf)
    assert conf.memqueue.dispatch_interval == 0.01, "a speed override goes on top"
    record = judged_configuration(conf, [mine])
    assert record["options"]["memqueue"]["token"] == "***"
    assert record["options"]["DEFAULT"]["transport_url"] == "***"  # secret=True in oslo
    assert [o["option"] for o in record["overrides"] if o["over_user_value"]] == [
        "dispatch_interval"]
    assert "s3cret" not in str(record) and "hunter2" not in str(record)


def test_a_behaviour_override_keeps_the_users_value(tmp_path: Path) -> None:
    mine = tmp_path / "my.conf"
    mine.write_text("[DEFAULT]\nrpc_response_timeout = 30\n")
    conf = base_conf({"DEFAULT": {"rpc_response_timeout": Override(7, "x", True)}}, [mine])
    assert conf.rpc_response_timeout == 30
    record = judged_configuration(conf, [mine])
    assert [k["option"] for k in record["kept"]] == ["rpc_response_timeout"]


def test_shipped_configurations_resolve_and_parse() -> None:
    names = sorted(p.stem for p in SHIPPED_DIR.glob("*.conf"))
    assert "rabbit-quorum" in names
    for name in names:
        assert options_set_in([resolve_config_file(name)]), name


def test_a_missing_file_is_one_line_naming_the_shipped_ones() -> None:
    with pytest.raises(ConfigFileError, match="no shipped configuration of that name "
                                              r"\(shipped: .*rabbit-quorum"):
        resolve_config_file("nowhere")


def test_the_fingerprint_leaves_out_what_every_run_sets() -> None:
    record = {"options": {"DEFAULT": {"control_exchange": "dc-x"},
                          "g": {"a": 1, "b": True}},
              "overrides": [{"group": "g", "option": "a"}]}
    assert fingerprint(record) == "g.b=True"
    assert fingerprint(None) == ""
