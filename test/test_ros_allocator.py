"""The node's heap policy: after start-up, large buffers must still be mapped and given back when freed.

glibc's dynamic mmap threshold would carve them from its heaps once a large mapped block (the weights)
has been freed; the soak showed those heaps' free space growing. Each check runs in a fresh interpreter,
since the setting is process-wide.
"""
from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from ckd_ros.ros.allocator import DEFAULT_MMAP_THRESHOLD, pin_mmap_threshold

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the policy is glibc's mallopt")

# Frees a 16 MiB mapped block (as loading weights does), then asks for a 4 MiB one; reports whether the
# kernel mapping count (mallinfo2's hblks) went up for it, i.e. whether it was mapped.
PROBE = """
import ctypes, json, sys
from ckd_ros.ros.allocator import pin_mmap_threshold
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                             "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
if not hasattr(libc, "mallinfo2"):
    print(json.dumps({"skip": "glibc < 2.33 has no mallinfo2"})); sys.exit()
libc.mallinfo2.restype = MallInfo2
said = pin_mmap_threshold() if sys.argv[1] == "pin" else "default"
big = bytearray(16 << 20); del big
before = libc.mallinfo2().hblks
frame = bytearray(4 << 20)
print(json.dumps({"mapped": libc.mallinfo2().hblks == before + 1, "said": said}))
"""


def probe(mode: str, env: dict[str, str] | None = None) -> dict:
    import os
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})}).stdout
    result = json.loads(out)
    if "skip" in result:
        pytest.skip(result["skip"])
    return result


def test_without_the_policy_glibc_carves_large_buffers_from_its_heaps_after_a_large_free():
    assert probe("default")["mapped"] is False


def test_with_the_policy_large_buffers_stay_mapped_and_the_node_says_so():
    result = probe("pin")
    assert result["mapped"] is True
    assert result["said"] == f"malloc mmap threshold fixed at {DEFAULT_MMAP_THRESHOLD // 1024} KiB (buffers above it are mapped)"


def test_a_users_own_threshold_is_kept():
    assert "user's setting is kept" in pin_mmap_threshold(environ={"MALLOC_MMAP_THRESHOLD_": "65536"})
    assert "user's setting is kept" in pin_mmap_threshold(
        environ={"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=65536"})
    result = probe("pin", {"MALLOC_MMAP_THRESHOLD_": str(64 << 20)})   # glibc honours theirs: not mapped
    assert result["mapped"] is False and "kept" in result["said"]
