"""The ``[memqueue]`` option group: what a deployer can tune, and its defaults.

The group is registered by :class:`memqueue.driver.MemqueueDriver` itself, in
``__init__``, on whatever ``ConfigOpts`` the transport was given, the way
oslo.messaging's own drivers register theirs.  Nothing is registered at import
time, so two transports built on two configurations never share options.
"""

from __future__ import annotations

import dataclasses

from oslo_config import cfg

GROUP = "memqueue"

OPTS = [
    cfg.FloatOpt(
        "retry_interval", default=1.0, min=0.0,
        help="Seconds to wait before trying the broker again after it could not be "
             "reached: between two attempts of a send, and before a listener reconnects. "
             "The default suits a real outage (a broker restart takes seconds); tests "
             "that cause outages on purpose want it much shorter."),
    cfg.IntOpt(
        "connect_attempts", default=3, min=1,
        help="How many times listen() and listen_for_notifications() try to reach the "
             "broker, retry_interval apart, before raising TransportDriverError."),
]


@dataclasses.dataclass(frozen=True)
class Settings:
    """The values one driver instance read from ``[memqueue]`` when it was built.

    The driver reads its options once, in ``__init__``, so these are exactly
    what it runs with; adapters and tests read them from ``driver.settings``
    to show which values were in force.
    """

    retry_interval: float
    connect_attempts: int

    @classmethod
    def defaults(cls) -> Settings:
        return cls(**{opt.dest: opt.default for opt in OPTS})


def register(conf: cfg.ConfigOpts) -> Settings:
    """Register ``[memqueue]`` on ``conf`` (again is harmless) and read it."""
    conf.register_group(cfg.OptGroup(GROUP, title="memqueue driver options"))
    conf.register_opts(OPTS, group=GROUP)
    group = conf[GROUP]
    return Settings(retry_interval=group.retry_interval,
                    connect_attempts=group.connect_attempts)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """For ``oslo-config-generator`` (entry point ``oslo.config.opts``)."""
    return [(GROUP, list(OPTS))]
