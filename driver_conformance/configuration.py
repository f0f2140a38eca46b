"""The configuration a driver under test is built with: the user's files, the adapter's overrides.

Operators do not run "the rabbit driver"; they run it with their own
``[oslo_messaging_rabbit]`` settings.  ``--oslo-config-file=PATH``
(repeatable, like oslo's own ``--config-file``; a shipped name such as
``rabbit-quorum`` resolves to the kit's file of that name) loads those files
into the configuration of every driver the run builds, so the verdict is the
verdict of that configuration.

The adapter's overrides (:meth:`Adapter.option_overrides`) make a driver
fast under test: reconnect delays, heartbeat rates, reply patience.  Each is
an :class:`Override` with the reason for it.  An override marked as
changing behaviour never replaces a value the user's files set (the user's
choice is what is judged); a speed override is applied on top, and the run
says so: every override applied over a user's value is listed, with why.

An oslo.messaging driver registers its own option group in ``__init__`` and
may read its values right there, so overrides of a driver's own options
cannot be set before the driver exists (oslo.config refuses an override of
an option it does not know) nor after (too late).  :class:`DriverConf` holds
them as pending and applies each the moment its option is registered.  An
override no driver ever registered is a mistake in the adapter (a typo in a
group or an option name), reported by :func:`unapplied_overrides`.

:func:`judged_configuration` records what was judged: the files, every
option whose value differs from its default (secrets and URL passwords
masked), and the overrides, for the report.
"""

from __future__ import annotations

import configparser
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from oslo_config import cfg

from driver_conformance.shipped import shipped_file, shipped_names

#: The group name adapters use for options of oslo.config's default group.
DEFAULT_GROUP = "DEFAULT"
#: Where the kit's shipped configurations live (``<name>.conf``).
SHIPPED_DIR = Path(__file__).parent / "configs"
#: What a secret's value is replaced with in reports.
MASK = "***"


class OverridesError(ValueError):
    """An adapter overrides an option that the driver never registered."""


class ConfigFileError(ValueError):
    """``--oslo-config-file`` names no readable file (one line, naming what is valid)."""


@dataclasses.dataclass(frozen=True)
class Override:
    """One option the adapter sets for the run, and why.

    ``changes_behaviour`` is for overrides that change what the contract sees
    (not only how fast): those never replace a value from the user's files.
    """

    value: Any
    reason: str = "fast under test"
    changes_behaviour: bool = False


def as_override(value: Any) -> Override:
    """An :class:`Override` from what an adapter returned (a plain value is a speed one)."""
    return value if isinstance(value, Override) else Override(value)


def _group_name(group: str | cfg.OptGroup | None) -> str:
    if group is None:
        return DEFAULT_GROUP
    return group.name if isinstance(group, cfg.OptGroup) else str(group)


def resolve_config_file(value: str) -> Path:
    """The file ``--oslo-config-file=value`` means: a path, or a shipped configuration's name."""
    found = shipped_file(value, SHIPPED_DIR, ".conf")
    if found is None:
        raise ConfigFileError(f"--oslo-config-file={value}: no such file, and no shipped "
                              "configuration of that name (shipped: "
                              f"{shipped_names(SHIPPED_DIR, '.conf')})")
    return found


def options_set_in(files: Sequence[Path]) -> set[tuple[str, str]]:
    """``(group, option)`` of every option the files set (later files win, as in oslo)."""
    found: set[tuple[str, str]] = set()
    for path in files:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error as exc:
            raise ConfigFileError(f"--oslo-config-file={path}: not an oslo.config file: "
                                  f"{str(exc).splitlines()[0]}") from None
        for name in parser.defaults():
            found.add((DEFAULT_GROUP, name))
        for section in parser.sections():
            for name in parser[section]:
                if name not in parser.defaults():
                    found.add((section, name))
    return found


@dataclasses.dataclass(frozen=True)
class AppliedOverride:
    group: str
    option: str
    value: Any
    reason: str
    #: The user's files set this option too (the override replaced their value).
    over_user_value: bool = False


class DriverConf(cfg.ConfigOpts):
    """A private ``ConfigOpts`` that applies overrides as their options are registered."""

    def __init__(self, overrides: Mapping[str, Mapping[str, Any]] | None = None,
                 user_set: Iterable[tuple[str, str]] = ()) -> None:
        # Set before ConfigOpts.__init__, which registers options already.
        self._user_set = set(user_set)
        self._pending: dict[tuple[str, str], Override] = {
            (group, name): as_override(value)
            for group, values in (overrides or {}).items() for name, value in values.items()}
        #: Overrides applied so far, in order.
        self.applied: list[AppliedOverride] = []
        #: Overrides not applied because the user's files set a behaviour-changing option.
        self.yielded: list[AppliedOverride] = []
        #: Every option registered, by ``(group, option)``.
        self.registered: dict[tuple[str, str], cfg.Opt] = {}
        super().__init__()

    def register_opt(self, opt: cfg.Opt, group: str | cfg.OptGroup | None = None,
                     cli: bool = False, **kwargs: Any) -> bool:
        registered = super().register_opt(opt, group, cli, **kwargs)
        key = (_group_name(group), opt.dest)
        self.registered.setdefault(key, opt)
        if key in self._pending:
            self._apply(key, self._pending.pop(key))
        return registered

    def _apply(self, key: tuple[str, str], override: Override) -> None:
        group, name = key
        user_set = key in self._user_set
        record = AppliedOverride(group, name, override.value, override.reason, user_set)
        if user_set and override.changes_behaviour:
            self.yielded.append(record)
            return
        self.set_override(name, override.value, group=None if group == DEFAULT_GROUP else group)
        self.applied.append(record)

    def override(self, group: str, name: str, value: Any, reason: str = "") -> None:
        """Override ``[group] name`` now if it is registered, else when it is."""
        try:
            self.set_override(name, value, group=None if group == DEFAULT_GROUP else group)
        except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
            self._pending[(group, name)] = Override(value, reason)

    def unapplied(self) -> list[tuple[str, str]]:
        """Overrides whose option was never registered, as ``(group, option)``."""
        return sorted(self._pending)

    def value(self, group: str, name: str) -> Any:
        section = self if group == DEFAULT_GROUP else getattr(self, group)
        return getattr(section, name)


def base_conf(overrides: Mapping[str, Mapping[str, Any]] | None = None,
              files: Sequence[Path] = ()) -> DriverConf:
    """A private configuration with every option group oslo.messaging's public API reads.

    ``files`` are the user's oslo.config files, parsed as oslo parses them;
    ``overrides`` (group -> option -> value or :class:`Override`) take effect
    as their options are registered, oslo.messaging's here and a driver's own
    in its ``__init__``.
    """
    from oslo_messaging import conffixture

    conf = DriverConf(overrides, options_set_in(files))
    conf([], project="driver-conformance", default_config_files=[str(f) for f in files],
         default_config_dirs=[])
    conffixture.ConfFixture(conf)
    _share_lock_path(conf, files)
    return conf


def _share_lock_path(conf: DriverConf, files: Sequence[Path]) -> None:
    """Give oslo.concurrency the ``[oslo_concurrency] lock_path`` of the user's files.

    The rabbit driver's queue manager (``use_queue_manager``) takes an
    external lock through ``lockutils.synchronized``, which reads the lock
    directory from the process-wide ``cfg.CONF``, not from the driver's
    configuration.  In a service both are the same object; here the driver's
    is private, so a lock path set in the judged files is made the process's
    default, as the service's own configuration would have made it.
    """
    if ("oslo_concurrency", "lock_path") not in options_set_in(files):
        return
    from oslo_concurrency import lockutils
    from oslo_concurrency import opts as concurrency_opts

    for group, opts in concurrency_opts.list_opts():
        conf.register_opts(opts, group=group)
    lock_path = conf.oslo_concurrency.lock_path
    if lock_path:
        lockutils.set_defaults(lock_path)


def unapplied_overrides(conf: DriverConf, adapter_name: str) -> str | None:
    """One line naming the overrides a built driver never registered, or None."""
    missing = conf.unapplied()
    if not missing:
        return None
    names = ", ".join(f"[{group}] {name}" for group, name in missing)
    groups = sorted({g for g, _ in conf.registered} | {DEFAULT_GROUP})
    return (f"adapter {adapter_name!r} overrides options the driver never registered: {names} "
            f"(option groups after building the driver: {', '.join(groups)})")


def _plain(value: Any) -> Any:
    """A JSON-able form of an option value."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)


def judged_configuration(conf: DriverConf, files: Sequence[Path]) -> dict[str, Any]:
    """What a report records of the configuration a run judged (secrets masked).

    ``options``: every registered option whose value differs from its default,
    by group; ``overrides``: what the adapter set (and whether over a user's
    value); ``kept``: behaviour-changing overrides not applied because the
    user's files set the option.
    """
    from driver_conformance.urls import mask_url

    options: dict[str, dict[str, Any]] = {}
    for (group, name), opt in sorted(conf.registered.items()):
        try:
            value = conf.value(group, name)
        except Exception:  # an option whose value cannot be read is not part of the record
            continue
        if value == opt.default:
            continue
        if opt.secret:
            value = MASK
        elif isinstance(value, str) and "://" in value:
            value = mask_url(value)
        options.setdefault(group, {})[name] = _plain(value)
    return {
        "files": [str(f) for f in files],
        "options": options,
        "overrides": [dataclasses.asdict(a) | {"value": _plain(a.value)} for a in conf.applied],
        "kept": [dataclasses.asdict(a) | {"value": _plain(a.value)} for a in conf.yielded],
    }


def fingerprint(configuration: Mapping[str, Any] | None) -> str:
    """A short, stable text for the options a configuration sets (what tells runs apart).

    Options the kit sets for every run (the control exchange, the adapter's
    speed overrides) are left out: they are the same under every configuration.
    """
    if not configuration:
        return ""
    ours = {(o["group"], o["option"]) for o in configuration.get("overrides", [])}
    ours.add((DEFAULT_GROUP, "control_exchange"))
    parts = [f"{group}.{name}={value}"
             for group, values in sorted(configuration.get("options", {}).items())
             for name, value in sorted(values.items()) if (group, name) not in ours]
    return ", ".join(parts)
