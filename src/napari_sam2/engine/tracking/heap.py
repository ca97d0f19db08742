"""Giving freed memory back to the operating system during long propagations.

Propagation allocates and frees tensors of many sizes for every frame. With
glibc's allocator, freed blocks stay in the process's heap, fragmented, and
the resident memory of a long run creeps up (measured: about 10 MB a frame
for sam2.1_hiera_tiny at 1024² on the CPU) although nothing is kept.
``malloc_trim`` returns those blocks; with it, resident memory stays flat once
the embedding cache is full. Elsewhere (macOS, Windows, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the heap's free memory to the operating system; whether that was possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
