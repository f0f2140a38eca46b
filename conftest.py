"""The repository's own pytest set-up for the kit's tests (not for conformance runs)."""

import os

# The kit's tests start pytest in-process and in subprocesses many times;
# silence oslo.messaging's import-time deprecation noise in all of them.
os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
