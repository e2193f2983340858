"""Run what might exhaust the machine in a forked child held to a time and a memory limit.

A test of a limit must fail, not hang or swap, when the limit is missing: the child answers with what
the function returned or raised, and the parent fails the test if the child runs out of time or memory.
"""

from __future__ import annotations

import os
import pickle
import resource
import select
import signal
import time
from collections.abc import Callable
from typing import Any

SECONDS = 20
EXTRA_MEMORY = 768 * 2**20  # bytes of address space the child may add to what the test process holds


def bounded(function: Callable[[], Any], *, seconds: float = SECONDS) -> tuple[str, Any]:
    """("returned", value) or ("raised", (exception type name, message)) of `function()` run in a child
    process; AssertionError if it takes over `seconds` or dies (out of memory, killed)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 0
        try:
            os.close(read_end)
            limit = _address_space() + EXTRA_MEMORY
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            try:
                answer: tuple[str, Any] = ("returned", function())
            except BaseException as error:  # noqa: BLE001 - every outcome goes back to the parent
                answer = ("raised", (type(error).__name__, str(error)[:2000]))
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(pickle.dumps(answer))
        except BaseException:  # noqa: BLE001
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    data = b""
    deadline = time.monotonic() + seconds
    with os.fdopen(read_end, "rb") as pipe:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pipe], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"still running after {seconds} s: the limit did not hold")
            chunk = os.read(pipe.fileno(), 1 << 16)
            if not chunk:
                break
            data += chunk
    _, status = os.waitpid(pid, 0)
    if not data:
        raise AssertionError(f"the child died (status {status}): out of memory, or killed")
    result: tuple[str, Any] = pickle.loads(data)
    return result


def _address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")
