"""The node process's heap policy: buffers of 2 MiB and more are mapped, not carved from glibc's heaps.

Why: glibc raises its mmap threshold to the size of each mapped block that is freed (up to 32 MiB) and its
trim threshold to twice that (mallopt(3)); loading the weights frees large blocks, so after start-up
buffers of up to tens of MiB come from the heaps, and free memory stays in them. With the node's
allocation pattern the heaps' free space grew: in a 5-minute soak (``make stress``) 22 -> 50 MiB free while the memory in use stayed
within 236-249 MiB, and RSS grew 8 %. Setting the threshold ends both raises; blocks above it are mapped
and given back when freed. 2 MiB, not glibc's initial 128 KiB: at 256 KiB the megabyte images and the
tracker's tensors were mapped and unmapped every frame, and the node's step took 38 ms instead of 13 ms.
The README's soak section has the measurements.

The process-wide setting belongs to the process's entry point (the node), not to the tracker library.
"""
from __future__ import annotations

import ctypes
import os
import platform

# glibc's malloc.h; the same value on every architecture.
M_MMAP_THRESHOLD = -3
DEFAULT_MMAP_THRESHOLD = 2 * 1024 * 1024
# A user's own setting, through glibc's environment variable or its tunables, is kept.
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold")


def pin_mmap_threshold(threshold_bytes: int = DEFAULT_MMAP_THRESHOLD,
                       environ: dict[str, str] | None = None) -> str:
    """Fix glibc's mmap threshold for this process; returns what was done, for the node's log.

    Left alone where the C library is not glibc or the user set the threshold (``MALLOC_MMAP_THRESHOLD_``
    or ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...``)."""
    env = os.environ if environ is None else environ
    if USER_SETTINGS[0] in env or USER_SETTINGS[1] in env.get("GLIBC_TUNABLES", ""):
        return "malloc mmap threshold: the user's setting is kept"
    if platform.libc_ver()[0] != "glibc":
        return "malloc mmap threshold: unchanged (the C library is not glibc)"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "malloc mmap threshold: unchanged (mallopt not found)"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, int(threshold_bytes)) != 1:
        return f"malloc mmap threshold: glibc refused {threshold_bytes} bytes; unchanged"
    return f"malloc mmap threshold fixed at {threshold_bytes // 1024} KiB (buffers above it are mapped)"
