"""One log line per kind of problem per period.

rclpy's ``throttle_duration_sec`` throttles per call site: a second, different problem arriving within the
period at the same site would never be logged. Here the key is the message with its numbers blanked, so
"step 10 < row 30" and "step 12 < row 36" share a line while "data shorter than height x step" gets its own.
"""
from __future__ import annotations

import re
import threading
import time

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", re.IGNORECASE)


def problem_kind(message: str) -> str:
    """``message`` with every number replaced by ``#``: the same problem with other values, same kind."""
    return _NUMBER.sub("#", message)


class KeyedThrottle:
    """``allow(key)`` is True at most once per ``period_s`` for each key (monotonic clock)."""

    def __init__(self, period_s: float, max_keys: int = 256) -> None:
        self.period_s = float(period_s)
        self._max_keys = max_keys
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                return False
            if len(self._last) >= self._max_keys:
                # hostile input could invent kinds without end: forget the old ones rather than grow
                self._last = {k: t for k, t in self._last.items() if now - t < self.period_s}
                if len(self._last) >= self._max_keys:
                    return False
            self._last[key] = now
            return True
