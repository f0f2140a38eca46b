"""memqueue: an in-process oslo.messaging transport driver (``memqueue://``).

It is the worked example of an out-of-tree driver tested with driver-conformance:
a driver the kit did not write, with its own option group (``[memqueue]``,
registered in the driver's ``__init__``), callback listeners only, and two ways
of being wired into the kit (a ``conftest.py`` adapter for a source checkout,
an entry-point adapter once installed).  See this directory's README.md.

Each virtual host of the URL (``memqueue:///my-tests``) is its own broker in
this process, so tests that use different virtual hosts never see each
other's messages.
"""

__version__ = "0.1.0"
