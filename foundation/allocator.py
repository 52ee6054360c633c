"""glibc's allocator set for tensor work: large freed blocks stay in the process for the next step.

By default glibc returns a freed block above its mmap threshold (at most 32 MiB, adapted at run time) to the
system, and trims the heap's free top above twice that: a loop that allocates and frees the same large
activations every step (an attack's or ABS's latent search's) then pays fresh page faults on every step.
Raising both thresholds keeps those pages mapped.  On two cores it took ABS inference at the paper budget from
8.2 to 16.0 images/s before any change to the search (measured by hand in two fresh processes, with the
thresholds set through ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``: one process cannot time both, so
``bench perf`` runs every contender with them set).  The same advice as PyTorch's CPU tuning guide (jemalloc
or tcmalloc), without a preloaded library.

``tune()`` is a no-op where the C library is not glibc (macOS, musl) and after its first call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

#: ``mallopt`` parameters (glibc's malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Blocks below this come from the heap and are reused (the ABS search's largest is 40 MiB).
MMAP_THRESHOLD = 256 << 20
#: The heap's free top is kept up to this size.
TRIM_THRESHOLD = 1 << 30


@functools.cache
def tune() -> bool:
    """Set the thresholds once per process; True when glibc took them."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
