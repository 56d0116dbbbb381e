"""Which CPU a timing was taken on: timings from different CPUs are never compared, and every one says where it ran.

XNNPACK picks its kernels by the instruction sets it finds (AVX2, AVX-512, VNNI for int8
dot products), so a latency means something only next to the CPU that produced it.
"""

from __future__ import annotations

import functools
import os
import platform

# instruction-set flags of /proc/cpuinfo that change which XNNPACK kernels run, and the name they are shown with
ISA_FLAGS = (
    ("avx512f", "AVX-512"),
    ("avx2", "AVX2"),
    ("avx512_vnni", "VNNI"),
    ("avx_vnni", "VNNI"),
    ("asimddp", "dot"),
)


@functools.lru_cache(maxsize=1)
def cpu_label() -> str:
    """'AMD EPYC (x86_64, 2 cores; AVX2, no VNNI)': the CPU model, architecture, cores and the kernel-relevant ISAs."""
    name, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Hardware", "cpu model") and not name:
                    name = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    name = name or platform.processor() or "unknown CPU"
    isas = list(dict.fromkeys(label for flag, label in ISA_FLAGS if flag in flags))
    if flags and "VNNI" not in isas and platform.machine() in ("x86_64", "AMD64"):
        isas.append("no VNNI")
    extra = f"; {', '.join(isas)}" if isas else ""
    return f"{name} ({platform.machine()}, {os.cpu_count() or 1} cores{extra})"
