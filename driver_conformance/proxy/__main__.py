"""``python -m driver_conformance.proxy``: the child side of :class:`ProxyProcess`."""

from driver_conformance.proxy.process import main

if __name__ == "__main__":
    raise SystemExit(main())
