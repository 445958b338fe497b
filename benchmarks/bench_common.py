"""What every benchmark prints about the machine it ran on."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def machine() -> str:
    """Cores, CPU model, Python version and the date."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
