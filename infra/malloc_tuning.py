"""Keep glibc's heap from growing with video length.

Frame buffers (6 MB at 1080p) and per-segment codec threads are allocated and freed over and
over. With glibc's defaults the mmap threshold rises after the first large free, so later
frames come from the heap, and every new codec thread may get its own arena; both fragment, and
the resident size creeps up segment after segment. Pinning the threshold sends every large
buffer back to the kernel on free, and two arenas bound the per-thread heaps.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # mallopt parameter numbers from glibc's malloc.h
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 1 << 20
ARENA_MAX = 2

_tuned = False


def tune_malloc() -> bool:
    """Apply the settings once per process; False (and nothing changed) off glibc."""
    global _tuned
    if _tuned:
        return True
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _tuned = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_ARENA_MAX, ARENA_MAX))
    if not _tuned:
        log.warning("mallopt refused the heap settings; peak memory may grow with video length")
    return _tuned
