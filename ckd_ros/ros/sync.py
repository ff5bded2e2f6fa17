"""Approximate-time pairing of the RGB and thermal streams.

On a ROS 2 distribution message_filters.ApproximateTimeSynchronizer is used. PyPI ROS has no
message_filters, so :class:`ApproximateTimeSync` reproduces its documented behaviour (Humble/Jazzy Python
implementation): matching is attempted when a message arrives, against the other queues' messages within
``slop`` of it, nearest first; a set matches only when its stamp spread is strictly below ``slop``; a
matched set leaves the queues; each queue keeps at most ``queue_size`` messages (oldest evicted); a second
message with the same stamp replaces the first; the callback runs with the lock held. Unlike
message_filters it also counts what it throws away, for diagnostics.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class SyncCounters:
    received: list[int]
    matched: int = 0
    evicted: int = 0       # unmatched messages pushed out of a full queue
    replaced: int = 0      # messages overwritten by a later one with the same stamp


class ApproximateTimeSync:
    """Approximate-time synchroniser with message_filters semantics over ``n`` inputs.

    ``add(index, msg, stamp_ns)`` feeds input ``index``; ``callback(*msgs)`` receives a matched set in
    input order.
    """

    def __init__(self, n_inputs: int, queue_size: int, slop_s: float,
                 callback: Callable[..., None]) -> None:
        if n_inputs < 2:
            raise ValueError(f"need at least two inputs to synchronise, got {n_inputs}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if not slop_s > 0.0:
            raise ValueError(f"slop must be > 0 seconds, got {slop_s}")
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(slop_s * 1e9))
        self._callback = callback
        self._queues: list[dict[int, Any]] = [{} for _ in range(n_inputs)]
        self._lock = threading.Lock()
        self.counters = SyncCounters(received=[0] * n_inputs)

    def input(self, index: int) -> Callable[[Any], None]:
        """Callback for a subscription of input ``index`` (stamp read from ``msg.header.stamp``)."""
        def feed(msg: Any) -> None:
            stamp = msg.header.stamp
            self.add(index, msg, int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec))
        return feed

    def add(self, index: int, msg: Any, stamp_ns: int) -> None:
        with self._lock:
            self.counters.received[index] += 1
            queue = self._queues[index]
            if stamp_ns in queue:
                self.counters.replaced += 1
            queue[stamp_ns] = msg
            while len(queue) > self.queue_size:
                del queue[min(queue)]
                self.counters.evicted += 1
            candidates: list[list[int]] = []
            for other, other_queue in enumerate(self._queues):
                if other == index:
                    continue
                near = sorted((abs(s - stamp_ns), s) for s in other_queue if abs(s - stamp_ns) <= self.slop_ns)
                if not near:
                    return
                candidates.append([s for _, s in near])
            for combination in itertools.product(*candidates):
                stamps = list(combination)
                stamps.insert(index, stamp_ns)
                if max(stamps) - min(stamps) < self.slop_ns:
                    msgs = [q.pop(s) for q, s in zip(self._queues, stamps)]
                    self.counters.matched += 1
                    self._callback(*msgs)
                    return

    def pending(self) -> list[int]:
        with self._lock:
            return [len(q) for q in self._queues]
