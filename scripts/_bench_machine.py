"""What the bench scripts print beside every figure: the machine they ran on."""

from __future__ import annotations


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown CPU" where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")),
                        "unknown CPU")
    except OSError:
        return "unknown CPU"
