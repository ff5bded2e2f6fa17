"""Hand-over of synchronised image pairs from the ROS callbacks to the inference worker.

The synchroniser callback only stores the newest pair in a one-slot mailbox; the worker takes whatever is
newest when it becomes free. A pair overwritten before the worker took it is dropped (counted), so when
inference is slower than the cameras the output latency stays about one inference time instead of
growing with a backlog. A short history of recent pairs lets ``~/initialize`` use the frame a box was
drawn on.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable


def stamp_ns(stamp: Any) -> int:
    """A builtin_interfaces/Time as integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def stamp_text(stamp_ns: int) -> str:
    """Exact seconds.nanoseconds (a float loses the last digits of an epoch stamp)."""
    return f"{stamp_ns // 1_000_000_000}.{stamp_ns % 1_000_000_000:09d}"


@dataclass(frozen=True)
class ImagePair:
    rgb: Any                      # sensor_msgs/Image
    thermal: Any                  # sensor_msgs/Image
    stamp_ns: int                 # RGB header stamp (node clock domain)
    received_ns: int              # node clock when the pair was completed


class LatestPairMailbox:
    """One-slot mailbox: ``put`` replaces, ``take`` waits for a pair not yet taken."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pair: ImagePair | None = None
        self._closed = False
        self.dropped = 0

    def put(self, pair: ImagePair) -> bool:
        """Store ``pair``; True when it replaced a pair the worker never saw (counted as dropped)."""
        with self._cond:
            replaced = self._pair is not None
            if replaced:
                self.dropped += 1
            self._pair = pair
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> ImagePair | None:
        """The newest pair not yet taken, waiting up to ``timeout`` s; None on timeout or when closed."""
        with self._cond:
            if self._pair is None and not self._closed:
                self._cond.wait(timeout)
            pair, self._pair = self._pair, None
            return None if self._closed else pair

    def clear(self) -> None:
        with self._cond:
            self._pair = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._pair = None
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False


class PairHistory:
    """The last ``size`` synchronised pairs, looked up by RGB stamp."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"history size must be >= 1, got {size}")
        self._pairs: deque[ImagePair] = deque(maxlen=size)
        self._lock = threading.Condition()

    def add(self, pair: ImagePair) -> None:
        with self._lock:
            self._pairs.append(pair)
            self._lock.notify_all()

    def newest(self) -> ImagePair | None:
        with self._lock:
            return self._pairs[-1] if self._pairs else None

    def find(self, stamp_ns: int) -> ImagePair | None:
        with self._lock:
            for pair in reversed(self._pairs):
                if pair.stamp_ns == stamp_ns:
                    return pair
            return None

    def nearest(self, stamp_ns: int, tolerance_ns: int) -> ImagePair | None:
        """The held pair whose stamp is closest to ``stamp_ns``, if within ``tolerance_ns``."""
        with self._lock:
            best = min(self._pairs, key=lambda p: abs(p.stamp_ns - stamp_ns), default=None)
        return best if best is not None and abs(best.stamp_ns - stamp_ns) <= tolerance_ns else None

    def wait_for(self, stamp_ns: int, timeout: float) -> ImagePair | None:
        """The pair with ``stamp_ns``, waiting up to ``timeout`` s while it may still be in flight.

        A service request is a few bytes and can overtake the image it refers to (a 1080p frame takes tens
        of ms between processes, more on a loaded machine). Waits only while nothing at or after
        ``stamp_ns`` is held: once a later frame has arrived, the requested one is not coming.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            while True:
                for pair in reversed(self._pairs):
                    if pair.stamp_ns == stamp_ns:
                        return pair
                if self._pairs and self._pairs[-1].stamp_ns > stamp_ns:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(left)

    def span(self) -> tuple[int, int] | None:
        """(oldest, newest) stamps held, for error messages."""
        with self._lock:
            return (self._pairs[0].stamp_ns, self._pairs[-1].stamp_ns) if self._pairs else None

    def lookup(self, stamp_ns: int, wait_s: float, now_ns: int = 0,
               max_lead_s: float = float("inf")) -> tuple[ImagePair | None, str | None]:
        """The pair an initialisation request refers to (zero stamp: the newest), or why there is none.

        A stamp more than ``max_lead_s`` ahead of ``now_ns`` (the node clock) is answered at once: no camera
        can have sent it, and waiting for it would hold the service."""
        if stamp_ns == 0:
            pair = self.newest()
            if pair is None:
                return None, ("no synchronised RGB + thermal pair received yet (is the node active and are "
                              "both cameras publishing?)")
            return pair, None
        if now_ns > 0 and stamp_ns - now_ns > max_lead_s * 1e9:
            return None, (f"stamp {stamp_text(stamp_ns)} is {(stamp_ns - now_ns) * 1e-9:.3f} s ahead of the node "
                          "clock: no such frame exists; send a zero stamp for the newest frame")
        pair = self.wait_for(stamp_ns, wait_s)
        if pair is not None:
            return pair, None
        span = self.span()
        held = f"frames held: {stamp_text(span[0])} .. {stamp_text(span[1])}" if span else "no frames held"
        return None, (f"no frame with stamp {stamp_text(stamp_ns)} in the recent history ({held}, waited "
                      f"{wait_s:g} s for it); was the frame lost in transport (large images need the "
                      "shared-memory profile, see config/tracker.yaml)? Send a zero stamp for the newest frame")

    def clear(self) -> None:
        with self._lock:
            self._pairs.clear()


class InferenceWorker:
    """The thread that takes the newest pair from a mailbox and processes it, until stopped.

    ``process(pair)`` does the work; an exception from it is handed to ``on_error`` and the loop goes on (one
    bad pair must not stop the node). ``min_step_s()`` pads each step (a debugging aid that simulates a slow
    device); it is read every step so that it applies live.
    """

    def __init__(self, mailbox: LatestPairMailbox, process: Callable[[ImagePair], None],
                 on_error: Callable[[Exception], None], min_step_s: Callable[[], float] = lambda: 0.0) -> None:
        self._mailbox, self._process, self._on_error, self._min_step_s = mailbox, process, on_error, min_step_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ckd_inference", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop after the pair in progress; True when the thread has ended within ``timeout``."""
        self._stop.set()
        self._mailbox.close()
        self._thread.join(timeout=timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            pair = self._mailbox.take(timeout=0.2)
            if pair is None:
                continue
            started = time.perf_counter()
            try:
                self._process(pair)
            except Exception as exc:  # noqa: BLE001 - reported, and the next pair is processed
                self._on_error(exc)
            pad = self._min_step_s() - (time.perf_counter() - started)
            if pad > 0:
                self._stop.wait(pad)
