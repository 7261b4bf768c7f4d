"""Describe the machine a benchmark ran on (written next to every result), and read processes' CPU time.

The machines these benchmarks run on are virtual and shared: the same 2-vCPU kind has been seen to run the same
pure-Python work up to twice as fast on one day as on another. ``python_loop_ms`` (a fixed CPU-bound loop, best of
three) is written with every result, so that figures from different days can be compared with the machine's speed
in mind.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any


def python_loop_ms() -> float:
    """Milliseconds this machine takes for 5 million additions in a pure-Python loop (best of three)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(5_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def process_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes have used so far (a process that is gone counts 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def is_niced(pid: int) -> bool:
    """True for a process running at lowered priority: ``esante serve``'s audit chain process (nice 10)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16]) > 0
    except (OSError, ValueError, IndexError):
        return False


def server_role(pid: int) -> str:
    """What a process of ``esante serve`` is: its audit chain process (niced), a uvicorn worker, or
    multiprocessing's resource tracker."""
    if is_niced(pid):
        return "audit chain process"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "gone"
    return "resource tracker" if b"resource_tracker" in command else "worker"


def process_tree(root: int) -> list[int]:
    """A process and its descendants (``esante serve``: its uvicorn workers and the audit chain process)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def current_commit() -> str:
    """The short hash of the checked-out commit, recorded with each result (the code a figure belongs to)."""
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip()


def describe(pg_url: str | None = None) -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gb = None
    try:
        with open("/proc/meminfo") as handle:
            memory_gb = round(int(handle.readline().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "os": platform.platform(),
        "python_loop_ms": python_loop_ms(),
    }
    if pg_url:
        try:
            info["postgresql"] = subprocess.run(
                ["psql", pg_url, "-tAc", "SHOW server_version"], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            info["postgresql"] = "unknown"
    return info
