"""Which synchronised pairs are new frames: stamps must increase and must not lie in the future.

A pair stamped at or before the last accepted one is a duplicate or arrived out of order: tracking it
would step the tracker back in time and publish results whose stamps go backwards. A pair stamped far
ahead of the node clock cannot be a real camera frame (an unsynchronised or corrupted clock); accepting it
would make every later, correct frame look old. When stamps go back and stay back (a bag played in a
loop, a camera restarted with a fresh clock) that is a new timeline, not stray messages: after
``restart_after_s`` of nothing but older stamps the guard accepts the new timeline and says so.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

SEC = 1_000_000_000


@dataclass(frozen=True)
class StampCheck:
    accepted: bool
    kind: str = ""              # future | duplicate | older (refused) | restart (accepted)
    message: str = ""


ACCEPT = StampCheck(True)


def stamp_text(stamp_ns: int) -> str:
    """Exact seconds.nanoseconds (a float loses the last digits of an epoch stamp)."""
    sign, value = ("-", -stamp_ns) if stamp_ns < 0 else ("", stamp_ns)
    return f"{sign}{value // SEC}.{value % SEC:09d}"


class StampGuard:
    """``check(stamp_ns, now_ns, max_lead_s)`` for each pair in arrival order (thread-safe)."""

    def __init__(self, restart_after_s: float = 3.0) -> None:
        self.restart_after_ns = int(restart_after_s * SEC)
        self._last: int | None = None
        self._back_since: int | None = None
        self._lock = threading.Lock()

    def check(self, stamp_ns: int, now_ns: int, max_lead_s: float) -> StampCheck:
        """``now_ns``: node clock (0 = unknown, e.g. sim time before /clock: no future check);
        ``max_lead_s`` <= 0 turns the future check off."""
        with self._lock:
            lead = stamp_ns - now_ns
            if max_lead_s > 0 and now_ns > 0 and lead > max_lead_s * SEC:
                return StampCheck(False, "future", (
                    f"pair stamped {lead / SEC:.3f} s ahead of the node clock (max_stamp_lead "
                    f"{max_lead_s:g} s): is the camera's clock synchronised with this computer's?"))
            last = self._last
            if last is not None and stamp_ns == last:
                return StampCheck(False, "duplicate", (
                    f"pair stamp {stamp_text(stamp_ns)} equals the previous pair's: a repeated frame"))
            if last is not None and stamp_ns < last:
                if self._back_since is None:
                    self._back_since = now_ns
                if now_ns - self._back_since < self.restart_after_ns:
                    return StampCheck(False, "older", (
                        f"pair stamp {stamp_text(stamp_ns)} is {(last - stamp_ns) / SEC:.3f} s older than the "
                        f"last accepted pair ({stamp_text(last)}): out of order, or the camera clock jumped "
                        f"back (taken as a restart after {self.restart_after_ns / SEC:g} s of older stamps)"))
                self._last, self._back_since = stamp_ns, None
                return StampCheck(True, "restart", (
                    f"stamps went back by {(last - stamp_ns) / SEC:.3f} s and stayed back for "
                    f"{self.restart_after_ns / SEC:g} s: taking it as a restarted camera clock or a looped bag"))
            self._last, self._back_since = stamp_ns, None
            return ACCEPT

    def clear(self) -> None:
        with self._lock:
            self._last, self._back_since = None, None
