"""Describe the machine a benchmark ran on (written next to every result)."""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Any


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
    }
    if pg_url:
        try:
            info["postgresql"] = subprocess.run(
                ["psql", pg_url, "-tAc", "SHOW server_version"], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            info["postgresql"] = "unknown"
    return info
