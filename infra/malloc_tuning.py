"""Keep glibc's heap from growing with video length, and large buffers from costing a page fault
per page each time.

Frame buffers (6 MB at 1080p, 25 MB at 4K) and torch's intermediate tensors (a few MB each) are
allocated and freed over and over. With glibc's defaults the mmap threshold is dynamic: it rises
after the first large free, and every new codec thread may get its own arena; the heap fragments
and the resident size creeps up segment after segment. Pinning the threshold switches the
dynamic rule off, and two arenas bound the per-thread heaps (each keeps up to 64 MiB free at its
top rather than giving it back to be faulted in again). It is pinned at glibc's largest
value on 64-bit, 32 MiB, so those buffers come from the heap and are reused: pinned at 1 MiB,
each was mapped fresh, faulted in page by page and unmapped on free, and a quarter of a dub's
CPU time went to the kernel (docs/PERFORMANCE.md, "Large buffers from the heap").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # mallopt parameter numbers from glibc's malloc.h
M_ARENA_MAX = -8
M_TRIM_THRESHOLD = -1
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc refuses more (HEAP_MAX_SIZE / 2 on 64-bit)
ARENA_MAX = 2
TRIM_THRESHOLD_BYTES = 64 << 20  # free room kept at a heap's top: a frame freed there is not faulted in again

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
    settings = (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
        (M_ARENA_MAX, ARENA_MAX),
    )
    _tuned = all([bool(mallopt(name, value)) for name, value in settings])
    if not _tuned:
        log.warning("mallopt refused the heap settings; peak memory may grow with video length")
    return _tuned
