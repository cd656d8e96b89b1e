"""glibc's allocator told to keep freed memory, for processes that free and take
back the same large buffers over and over (a connectivity fit: every step
records a graph of about 3 GiB and frees it).

By default glibc serves blocks over its mmap threshold with fresh ``mmap``
calls and returns freed heap tops to the kernel; each fit step's tensors then
come back as new pages, faulted in one by one while the forward pass first
writes them (docs/measurements/optimize.md: 0.7 million page faults in a
process's first step). With ``mmap`` off and no trimming the freed memory stays
in the process and is reused: alternated processes, the same fit step, 3.43-3.47x
its forward run by default against 2.97-2.98x in three of four (3.60x in the
fourth) with this setting. Only glibc has ``mallopt``; elsewhere nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
MALLOC_MODES = ("keep", "default")
"""``keep``: glibc keeps freed memory (no mmap, no trimming); ``default``: as glibc is."""


def _mallopt():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        log.info("no glibc mallopt here: the allocator is left as it is")
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def release_freed_memory(threshold: int = 1 << 20) -> bool:
    """The opposite of ``keep_freed_memory``, for a process that reads many
    files' arrays, joins them and frees the parts (``merge-cells``): every block of
    at least ``threshold`` bytes its own ``mmap``, given back to the kernel when
    freed. By default glibc raises its mmap threshold to the size of a freed
    block (up to 32 MB), so the next such blocks come from the heap, whose
    freed middle it keeps: a 90-run L2 pyramidal merge (7.5 GB of data) peaked
    at 13.9 GB as glibc is, 9.9 GB with this. True where it took effect."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    done = mallopt(M_MMAP_THRESHOLD, int(threshold)) == 1
    log.info("glibc: blocks of %d bytes and more mmapped %s", threshold,
             "yes" if done else "refused")
    return done


def keep_freed_memory() -> bool:
    """Turn off glibc's mmap for large blocks and its trimming of the heap in this
    process. True where it took effect, False where the C library has no
    ``mallopt`` (not glibc) or refused."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    no_mmap = mallopt(M_MMAP_MAX, 0) == 1
    no_trim = mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    log.info("glibc: mmap off %s, no trimming %s", "yes" if no_mmap else "refused",
             "yes" if no_trim else "refused")
    if no_mmap != no_trim:
        log.warning("glibc took one of the two settings only: counted as not kept")
    return no_mmap and no_trim


def set_malloc(mode: str) -> bool:
    """Apply ``mode`` (``MALLOC_MODES``); True where glibc now keeps freed memory."""
    if mode not in MALLOC_MODES:
        raise ValueError(f"malloc mode {mode!r}: one of {', '.join(MALLOC_MODES)}")
    return keep_freed_memory() if mode == "keep" else False
