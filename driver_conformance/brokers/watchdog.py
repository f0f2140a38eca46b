"""A dead-man switch for the processes a run starts: they never outlive the run.

A broker the kit starts for a run (the private RabbitMQ cluster of
:mod:`driver_conformance.brokers.rabbit_cluster`) runs in sessions of its
own, so that a Ctrl-C in the terminal does not reach it before the run has
stopped it cleanly.  The run stops it at its end, from an ``atexit`` hook
too; but a run killed with SIGKILL (or SIGTERM, on which Python runs no
cleanup, or a crash) never gets there.  So each such run starts a
:class:`Watchdog`: this file, run by path (``python -I watchdog.py DIR``,
only the standard library, so a broken install cannot stop it), in its own
session, with a pipe from the run on its stdin.  The run tells it each
process group it starts and stops; when the pipe reaches end-of-file
without the run's goodbye, the run is gone, and the watchdog kills the groups
it was told about and removes the run's directory.  Before killing a group it
checks that the group's leader still carries the identity it was told (an
environment entry), so a process ID reused since is never signalled.

Only if the watchdog is killed as well can processes survive; :func:`reap`
finds them by the marker on their command line and removes them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

#: The environment entry naming the private directory a watched process runs in.
DIR_ENV = "DRIVER_CONFORMANCE_CLUSTER_DIR"


class Watchdog:
    """The run's side of the switch.

    Lines on the watchdog's stdin: ``+<pgid> <KEY=VALUE>`` (a group started,
    whose leader's environment holds that entry), ``-<pgid>`` (stopped by the
    run), ``done`` (the run cleaned up itself).
    """

    def __init__(self, base: Path) -> None:
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [sys.executable, "-I", str(Path(__file__).resolve()), str(base)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

    def _send(self, line: str) -> None:
        with self._lock:
            stdin = self.process.stdin
            if stdin is None or stdin.closed:
                return
            with contextlib.suppress(OSError):
                stdin.write(f"{line}\n".encode())
                stdin.flush()

    def track(self, pgid: int, identity: str) -> None:
        """Watch process group ``pgid``, whose leader's environment holds ``identity``."""
        self._send(f"+{pgid} {identity}")

    def untrack(self, pgid: int) -> None:
        self._send(f"-{pgid}")

    def close(self, timeout: float = 5.0) -> None:
        """Tell the watchdog the run cleaned up, and let it exit."""
        self._send("done")
        with self._lock, contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


def is_group_of(pgid: int, identity: str) -> bool:
    """Whether process ``pgid`` still runs with ``identity`` in its environment."""
    try:
        environ = Path(f"/proc/{pgid}/environ").read_bytes()
    except OSError:
        return False
    return identity.encode() in environ.split(b"\0")


def kill_group(pgid: int) -> None:
    """SIGKILL process group ``pgid``; nothing if it is gone (or not ours)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def watch(base: str) -> int:
    """Run as the watchdog: wait for the run to go, then remove what it left."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    tracked: dict[int, str] = {}
    for raw in sys.stdin.buffer:
        line = raw.decode(errors="replace").strip()
        if line == "done":
            return 0
        if line.startswith("+"):
            pgid, _, identity = line[1:].partition(" ")
            tracked[int(pgid)] = identity
        elif line.startswith("-"):
            tracked.pop(int(line[1:]), None)
    # End of file without "done": the run died without cleaning up.
    for pgid, identity in tracked.items():
        if is_group_of(pgid, identity):
            kill_group(pgid)
    shutil.rmtree(base, ignore_errors=True)
    return 0


def reap(marker: str, dir_prefix: str) -> list[str]:
    """Kill every process marked ``marker <name>`` whose run is gone; the names reaped.

    The run is the PID in the ``owner`` file of the process's private
    directory (:data:`DIR_ENV`); a directory whose name starts with
    ``dir_prefix`` is removed with it.
    """
    reaped = []
    for proc_dir in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc_dir / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() not in argv[:-1]:
            continue
        name = argv[argv.index(marker.encode()) + 1].decode(errors="replace")
        try:
            env = dict(item.split(b"=", 1) for item in
                       (proc_dir / "environ").read_bytes().split(b"\0") if b"=" in item)
            pgid = os.getpgid(int(proc_dir.name))
        except (OSError, ValueError):
            continue
        base = Path(env.get(DIR_ENV.encode(), b"").decode())
        owner = _read_int(base / "owner") if base.parts else None
        if owner is not None and _alive(owner):
            continue
        kill_group(pgid)
        if base.parts and base.name.startswith(dir_prefix):
            shutil.rmtree(base, ignore_errors=True)
        reaped.append(name)
    return reaped


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if __name__ == "__main__":
    raise SystemExit(watch(sys.argv[1]))
