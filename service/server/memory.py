"""Give freed heap memory back to the operating system.

glibc keeps memory a process has freed for later reuse; after start-up (imports, the first
bundle's verification) and after a reload (the old bundle dropped) a worker's RSS stays at its
peak although the memory is free. `malloc_trim(0)` returns it. Measured with `make bench` on
2 workers: docs/performance.md. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

_libc_name = ctypes.util.find_library("c")


def _load_trim() -> Callable[[int], int] | None:
    if _libc_name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(_libc_name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_trim = _load_trim()


def release_free_memory() -> bool:
    """True when memory was returned to the OS (glibc's answer)."""
    return bool(_trim(0)) if _trim is not None else False
