"""Broken feature declarations: the adapter and the driver disagree on what is supported.

Mirrors :mod:`driver_conformance.scenarios.features`.  Each variant
declares an optional feature unsupported through
:meth:`~driver_conformance.broken.wrappers.WrappedDriver.capabilities`
while the driver still accepts it, which the scenarios hold against the
refusal the contract requires.
"""

from __future__ import annotations

import dataclasses

from driver_conformance.adapter import Capabilities
from driver_conformance.broken._registry import variant
from driver_conformance.broken.notifications import PoolsIgnored
from driver_conformance.broken.wrappers import WrappedDriver


@variant("pool-accepted-undeclared", "notify-listen.pool.unsupported-raises",
         "pools are declared unsupported, yet a pooled listen is accepted (and the pool ignored)")
class PoolAcceptedUndeclared(PoolsIgnored):
    """The adapter declares no pool support, but the driver does not refuse a pool.

    The contract requires ``NotImplementedError`` when pooling is not
    supported; a driver that silently ignores the pool instead makes every
    pool member compete with every other listener.
    """

    @classmethod
    def capabilities(cls, declared: Capabilities) -> Capabilities:
        return dataclasses.replace(declared, pools=False)


@variant("requeue-accepted-undeclared", "features.requeue.declared",
         "requeue is declared unsupported, yet require_features(requeue=True) does not raise")
class RequeueAcceptedUndeclared(WrappedDriver):
    """The adapter declares no requeue support; ``require_features`` does not refuse it.

    The declaration and the driver disagree, so a server asking for requeue
    is not told it will not get it.
    """

    @classmethod
    def capabilities(cls, declared: Capabilities) -> Capabilities:
        return dataclasses.replace(declared, requeue=False)


@variant("rpc-accepted-undeclared", "features.rpc.declared",
         "rpc is declared unsupported, yet send() and listen() work instead of refusing")
class RpcAcceptedUndeclared(WrappedDriver):
    """The adapter declares a notifications-only driver whose RPC half still answers.

    A notifications-only driver must refuse ``send()`` and ``listen()``; one
    that accepts them takes casts the suite never checked (its RPC clauses
    are UNSUPPORTED), so an RPC client on it is not told it cannot work.
    """

    @classmethod
    def capabilities(cls, declared: Capabilities) -> Capabilities:
        return dataclasses.replace(declared, rpc=False)
