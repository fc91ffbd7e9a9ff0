"""Keep freed memory from piling up in a long bulk run: call bound_memory() once at process start.

Two allocators keep what a process frees for its own reuse, so a sync or a hub
that handles one bounded batch after another still grew with the run:

- glibc gives each new thread its own arena, up to 8 per core, and memory freed
  in one arena waits there for that arena's next allocation: a process whose
  threads take turns with large short-lived buffers (the hub's waitress threads,
  each decoding and storing a ~1 MB batch; the gateway's sync, push worker and
  sender threads) holds the high-water mark of every arena at once. Two arenas
  (with the GIL, threads seldom allocate at the same instant);
- pyarrow's default pool (mimalloc in the wheels) keeps freed pages of the Arrow
  reads, digests and key sets; the system pool is glibc's malloc, whose large
  blocks go back to the system when freed.

Measured on a full 300k-row sync and push (bench/README.md, "Memory"): hub peak
RSS 237 -> 168 MB from the arenas; gateway 250 -> 237 MB from the arenas and the
key-set reconcile's slices, 214 MB with the system pool too. An explicit
MALLOC_ARENA_MAX or ARROW_DEFAULT_MEMORY_POOL in the environment wins.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def bound_memory() -> None:
    """Both settings, before the process starts its threads or reads anything big."""
    limit_malloc_arenas()
    use_system_arrow_pool()


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """mallopt(M_ARENA_MAX, arenas) on glibc; False where it does not apply or was set by the environment."""
    if "MALLOC_ARENA_MAX" in os.environ or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, arenas))


def use_system_arrow_pool() -> bool:
    """Arrow's allocations from the system allocator; False when the environment chose a pool."""
    if "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return False
    if "pyarrow" not in sys.modules:
        os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"  # read by pyarrow when it is first imported
        return True
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
    return True
