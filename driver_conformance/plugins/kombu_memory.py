"""Adapter for oslo.messaging's rabbit driver on kombu's in-process memory transport.

``kombu+memory:////`` runs the very same driver code as ``rabbit://`` (the
amqpdriver layer, kombu's producer/consumer machinery, the reply waiter) on
kombu's ``memory`` transport instead of a broker.  It is how oslo.messaging's
own unit tests run the driver, so the lane shows which deviations belong to
the driver and which to the broker: a clause that fails here and passes on
``rabbit`` fails because of the memory transport (no real acknowledgements,
no heartbeats, no publisher confirms), not the driver.

There is no network, so there are no faults to inject; the transport's
state is a class attribute shared by the whole process, so at the end of the
run every queue, exchange and binding under the run's prefix (and the reply
queues the run's drivers named) is removed from it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from oslo_config import cfg

import driver_conformance
from driver_conformance.adapter import CALLBACK, Adapter, Backend, Capabilities
from driver_conformance.brokers.rabbit import ReplyQueueTracker
from driver_conformance.drivers import load_driver
from driver_conformance.plugins.rabbit import (
    RABBIT_OVERRIDES,
    quiet_background_logs,
)


def drop_memory_state(prefix: str, extra_queues: set[str]) -> int:
    """Remove the run's queues, exchanges and bindings from kombu's memory transport.

    Returns how many queues were removed.
    """
    from kombu.transport import memory

    def ours(name: str) -> bool:
        return name.startswith(f"{prefix}-") or name in extra_queues

    queues = [q for q in list(memory.Channel.queues) if ours(q)]
    for name in queues:
        memory.Channel.queues.pop(name, None)
    state = memory.Transport.global_state
    for key in [k for k in list(state.bindings) if ours(k[0]) or ours(k[1])]:
        state.bindings.pop(key, None)
    for name in [q for q in list(state.queue_index) if ours(q)]:
        state.queue_index.pop(name, None)
    for name in [x for x in list(state.exchanges) if ours(x)]:
        state.exchanges.pop(name, None)
    return len(queues)


class KombuMemoryAdapter(Adapter):
    name = "kombu-memory"
    description = "oslo.messaging's rabbit driver on kombu's in-process memory transport"
    default_url = "kombu+memory:////"

    def __init__(self) -> None:
        self.replies = ReplyQueueTracker()
        self.last_cleanup: int | None = None

    def get_capabilities(self, url: str) -> Capabilities:
        return Capabilities()

    def option_overrides(self) -> Mapping[str, Mapping[str, Any]]:
        # The same driver options as the rabbit lane, so the two lanes differ
        # only in the transport underneath.
        return {"oslo_messaging_rabbit": dict(RABBIT_OVERRIDES)}

    @contextlib.contextmanager
    def backend(self, url: str, prefix: str) -> Iterator[Backend]:
        self.replies = ReplyQueueTracker()
        quiet_background_logs()
        try:
            yield Backend(url=url, facts={"broker": "kombu memory transport (in-process)"})
        finally:
            self.last_cleanup = drop_memory_state(prefix, self.replies.snapshot())

    def make_driver(self, conf: cfg.ConfigOpts, url: str, *, default_exchange: str,
                    allowed_remote_exmods: list[str], listener_style: str = CALLBACK) -> Any:
        driver = load_driver(conf, url, default_exchange=default_exchange,
                             allowed_remote_exmods=allowed_remote_exmods)
        return self.replies.watch(driver)


@driver_conformance.hookimpl
def conformance_adapters() -> list[Adapter]:
    return [KombuMemoryAdapter()]
