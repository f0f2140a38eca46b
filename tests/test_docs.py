"""What the README says of the kit matches the kit: exit codes, options, shipped files."""

from __future__ import annotations

from pathlib import Path

import pytest

from driver_conformance import exitcodes
from driver_conformance.configuration import SHIPPED_DIR as CONFIGS
from driver_conformance.expectations import SHIPPED_DIR as EXPECTATIONS

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text("utf-8")


def test_every_exit_code_is_in_the_readme_with_its_meaning(readme: str) -> None:
    for code, meaning in exitcodes.MEANINGS.items():
        row = f"| {int(code)} | {meaning} |"
        extra = exitcodes.EXPECTATIONS_MEANINGS.get(code)
        assert f"{row} {extra} |" in readme if extra else f"{row} |" in readme, row


def test_every_option_of_the_plugin_is_in_the_readme(readme: str,
                                                     pytestconfig: pytest.Config) -> None:
    group = pytestconfig._parser.getgroup("driver-conformance")  # the kit's options
    names = [name for option in group.options for name in option.names()]
    assert names, "the kit's option group is registered"
    assert [n for n in names if f"`{n}" not in readme] == []


def test_every_shipped_configuration_is_named_in_the_readme(readme: str) -> None:
    assert [p.stem for p in CONFIGS.glob("*.conf") if f"`{p.stem}`" not in readme] == []
    assert EXPECTATIONS.is_dir()
