"""Why no synchronised pair has formed recently, in words a person on the robot can act on."""
from __future__ import annotations

from typing import Mapping

SEC = 1_000_000_000
ROLES = (("RGB", "rgb/image"), ("thermal", "thermal/image"))


def stall_problem(now_ns: int, last_pair_ns: int | None, stale_after_s: float, last_receipt_ns: Mapping[str, int],
                  last_stamp_ns: Mapping[str, int], rates_hz: Mapping[str, float], slop_s: float) -> str | None:
    """None while pairs are fresh, or while neither camera sends anything (diagnostics already say so);
    otherwise which stream is silent, or how far apart the two streams' stamps are."""
    stale_ns = stale_after_s * SEC
    if last_pair_ns is not None and now_ns - last_pair_ns <= stale_ns:
        return None
    fresh = {role: now_ns - last_receipt_ns[role] <= stale_ns for role, _ in ROLES if role in last_receipt_ns}
    if not any(fresh.values()):
        return None
    since = "no pair yet" if last_pair_ns is None else f"no pair for {(now_ns - last_pair_ns) / SEC:.1f} s"
    for role, topic in ROLES:
        if not fresh.get(role, False):
            other = "RGB" if role == "thermal" else "thermal"
            silent = (f"for {(now_ns - last_receipt_ns[role]) / SEC:.1f} s" if role in last_receipt_ns
                      else "since activation")
            return (f"no synchronised RGB + thermal pair ({since}): {topic} has delivered no usable image {silent} "
                    f"while {other} arrives at {rates_hz.get(other, 0.0):.1f} Hz")
    gap = abs(last_stamp_ns["RGB"] - last_stamp_ns["thermal"]) / SEC
    return (f"no synchronised RGB + thermal pair ({since}) although both cameras deliver (RGB "
            f"{rates_hz.get('RGB', 0.0):.1f} Hz, thermal {rates_hz.get('thermal', 0.0):.1f} Hz): their newest stamps "
            f"are {gap:.3f} s apart and sync.slop is {slop_s:g} s (cameras stamping on different clocks?)")
