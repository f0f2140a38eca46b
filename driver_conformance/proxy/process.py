"""The proxies in a child process: :class:`ProxyProcess`, its :class:`RemoteProxy` handles.

The drivers' own behaviour is judged partly by what they leave open in the
kit's process (``driver.cleanup.releases-resources`` counts its sockets), and
a proxy thread in that process would be counted with them: the proxy closes
its side of a connection only after it has seen the driver close its own.
It also competes for the GIL with the scenario it is breaking.  So the lanes
run the proxies in a child process (``python -m driver_conformance.proxy``),
driven over its stdin/stdout, one JSON line per command and per answer.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from driver_conformance.proxy.amqp import ConfirmBudget
from driver_conformance.proxy.loop import (
    CONTROL_TIMEOUT,
    PROTOCOLS,
    FaultProxy,
    ProxyError,
    ProxyStats,
)


class ProxyProcess:
    """A child process running one :class:`FaultProxy` per upstream; see :class:`RemoteProxy`.

    The child exits when its stdin closes, so it cannot outlive the kit's
    process; :meth:`stop` ends it by its PID if it does not exit when asked.
    """

    def __init__(self, upstreams: list[tuple[str, int]], name: str = "fault-proxy",
                 start_timeout: float = 10.0, protocol: str | None = None) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; known: amqp (or None)")
        self.upstreams = upstreams
        self.name = name
        self.protocol = protocol
        self.start_timeout = start_timeout
        self.process: Any = None
        self.ports: list[int] = []
        self._lock = threading.Lock()

    def start(self) -> ProxyProcess:
        import json
        import subprocess
        import sys

        args = [sys.executable, "-m", "driver_conformance.proxy", "--name", self.name]
        for host, port in self.upstreams:
            args += ["--upstream", f"{host}:{port}"]
        if self.protocol is not None:
            args += ["--protocol", self.protocol]
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True, bufsize=1)
        hello = self._read(self.start_timeout)
        if hello is None or "ports" not in hello:
            self.stop()
            raise ProxyError(f"{self.name}: the proxy process did not start "
                             f"({json.dumps(hello) if hello else 'no answer'})")
        self.ports = list(hello["ports"])
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def _read(self, timeout: float) -> dict[str, Any] | None:
        import json
        import select

        stdout = self.process.stdout
        ready, _, _ = select.select([stdout], [], [], timeout)
        if not ready:
            return None
        line = stdout.readline()
        return json.loads(line) if line else None

    def call(self, op: str, *args: Any, index: int | None = None,
             timeout: float = CONTROL_TIMEOUT) -> Any:
        """Run ``op`` on the proxy ``index`` (or all of them) in the child; its result."""
        import json

        with self._lock:
            if self.process is None or self.process.poll() is not None:
                raise ProxyError(f"{self.name}: the proxy process is not running")
            try:
                self.process.stdin.write(json.dumps(
                    {"op": op, "args": list(args), "index": index}) + "\n")
                self.process.stdin.flush()
            except OSError as exc:
                raise ProxyError(f"{self.name}: cannot reach the proxy process: {exc}") from None
            answer = self._read(timeout)
        if answer is None:
            raise ProxyError(f"{self.name}: no answer to {op!r} within {timeout}s")
        if not answer.get("ok"):
            raise ProxyError(f"{self.name}: {op} failed: {answer.get('error')}")
        return answer.get("result")

    def stop(self, timeout: float = CONTROL_TIMEOUT) -> None:
        import os
        import signal
        import subprocess

        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProxyError):
            self.call("stop", timeout=timeout)
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        with contextlib.suppress(OSError):
            proc.stdout.close()

    def proxies(self) -> list[RemoteProxy]:
        return [RemoteProxy(self, i) for i in range(len(self.ports))]


class RemoteProxy:
    """One proxy of a :class:`ProxyProcess`, with :class:`FaultProxy`'s fault methods."""

    def __init__(self, process: ProxyProcess, index: int) -> None:
        self.process = process
        self.index = index
        self.address = ("127.0.0.1", process.ports[index])
        self.upstream = process.upstreams[index]
        self.protocol = process.protocol

    @property
    def port(self) -> int:
        return self.address[1]

    def _call(self, op: str, *args: Any) -> Any:
        return self.process.call(op, *args, index=self.index)

    def cut(self) -> int:
        return self._call("cut")

    def refuse(self, refusing: bool = True) -> None:
        self._call("refuse", refusing)

    def outage(self) -> int:
        return self._call("outage")

    def freeze(self, frozen: bool = True) -> None:
        self._call("freeze", frozen)

    def set_delay(self, seconds: float) -> None:
        self._call("set_delay", seconds)

    def lose_confirmations(self, count: int) -> None:
        self._call("lose_confirmations", count)

    @property
    def confirm_group(self) -> tuple[str, int]:
        """The child's proxies share one budget (see :meth:`FaultProxy.confirm_group`)."""
        return ("process", id(self.process))

    def heal(self) -> None:
        self._call("heal")

    def barrier(self) -> None:
        self._call("barrier")

    @property
    def stats(self) -> ProxyStats:
        return ProxyStats(**self._call("stats"))

    @property
    def live_connections(self) -> int:
        return self.stats.live


_OPS = {"cut", "refuse", "outage", "freeze", "set_delay", "lose_confirmations", "heal",
        "barrier", "stats"}


def serve(upstreams: list[tuple[str, int]], name: str, protocol: str | None = None) -> int:
    """The child's side of :class:`ProxyProcess`: proxies, then commands until stdin closes."""
    import json
    import sys

    budget = ConfirmBudget()
    proxies = [FaultProxy(u, name=f"{name}-{i}", protocol=protocol, budget=budget).start()
               for i, u in enumerate(upstreams)]

    def answer(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    answer({"ports": [p.port for p in proxies]})
    try:
        for line in sys.stdin:
            try:
                command = json.loads(line)
                op = command["op"]
                if op == "stop":
                    answer({"ok": True, "result": None})
                    break
                if op not in _OPS:
                    raise ValueError(f"unknown operation {op!r}")
                index = command.get("index")
                targets = proxies if index is None else [proxies[index]]
                results = []
                for proxy in targets:
                    if op == "stats":
                        results.append(proxy.stats.as_dict())
                    else:
                        results.append(getattr(proxy, op)(*command.get("args", [])))
                answer({"ok": True, "result": results[0] if index is not None else results})
            except Exception as exc:  # reported to the parent, which raises ProxyError
                answer({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        for proxy in proxies:
            proxy.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m driver_conformance.proxy",
                                     description="loopback fault proxies driven over stdin")
    parser.add_argument("--upstream", action="append", required=True, metavar="HOST:PORT")
    parser.add_argument("--name", default="fault-proxy")
    parser.add_argument("--protocol", choices=sorted(p for p in PROTOCOLS if p))
    args = parser.parse_args(argv)
    upstreams = []
    for item in args.upstream:
        host, _, port = item.rpartition(":")
        upstreams.append((host.strip("[]"), int(port)))
    return serve(upstreams, args.name, args.protocol)


@contextlib.contextmanager
def proxies_for(hosts: list[tuple[str, int]], name: str = "fault-proxy", *,
                protocol: str | None = None, out_of_process: bool = True) -> Iterator[list[Any]]:
    """One started proxy per ``(host, port)``, all stopped when the block ends.

    By default they run in a child process (see :class:`ProxyProcess`); the
    in-process variant is for tests of the proxy itself.  ``protocol`` is
    what the connections carry (see :class:`FaultProxy`); the proxies share
    one lost-confirmation budget either way.
    """
    if out_of_process:
        process = ProxyProcess(hosts, name=name, protocol=protocol).start()
        try:
            yield process.proxies()
        finally:
            process.stop()
        return
    started: list[FaultProxy] = []
    budget = ConfirmBudget()
    try:
        for i, (host, port) in enumerate(hosts):
            started.append(FaultProxy((host, port), name=f"{name}-{i}", protocol=protocol,
                                      budget=budget).start())
        yield started
    finally:
        for proxy in reversed(started):
            proxy.stop()

