"""driver-conformance: the conformance test kit for oslo.messaging transport drivers.

Adapters import :data:`hookimpl` to register with the kit, and subclass
:class:`~driver_conformance.adapter.Adapter`.
"""

from driver_conformance.adapter import (
    Adapter,
    Backend,
    BackendUnavailable,
    Capabilities,
    StoredView,
)
from driver_conformance.configuration import Override
from driver_conformance.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "Adapter",
    "Backend",
    "BackendUnavailable",
    "Capabilities",
    "Override",
    "StoredView",
    "__version__",
    "hookimpl",
]
