"""The project's approximate-time synchroniser behaves like message_filters.ApproximateTimeSynchronizer."""
from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest

from ckd_ros.ros.sync import ApproximateTimeSync

MS = 1_000_000


def stamped(stamp_ns: int, tag: str) -> SimpleNamespace:
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=stamp_ns // 1_000_000_000,
                                                                        nanosec=stamp_ns % 1_000_000_000)),
                           tag=tag)


def make(queue_size: int = 10, slop_ms: float = 10.0):
    pairs: list[tuple[str, str]] = []
    sync = ApproximateTimeSync(2, queue_size, slop_ms / 1000.0, lambda a, b: pairs.append((a.tag, b.tag)))
    return sync, pairs


def test_messages_within_slop_pair_as_soon_as_the_second_arrives():
    sync, pairs = make()
    sync.input(0)(stamped(100 * MS, "rgb0"))
    assert pairs == []
    sync.input(1)(stamped(104 * MS, "tir0"))
    assert pairs == [("rgb0", "tir0")]
    assert sync.pending() == [0, 0] and sync.counters.matched == 1


def test_a_stamp_difference_exactly_equal_to_slop_never_matches():
    sync, pairs = make(slop_ms=10.0)
    sync.add(0, stamped(0, "rgb"), 100 * MS)
    sync.add(1, stamped(0, "tir"), 110 * MS)
    assert pairs == []
    sync.add(1, stamped(0, "tir2"), 110 * MS - 1)
    assert pairs == [("rgb", "tir2")]


def test_the_nearest_candidate_is_chosen_and_matched_messages_leave_the_queues():
    sync, pairs = make(slop_ms=20.0)
    sync.add(1, stamped(0, "tir_far"), 85 * MS)
    sync.add(1, stamped(0, "tir_near"), 98 * MS)   # these two thermal frames cannot pair with each other
    sync.add(0, stamped(0, "rgb"), 100 * MS)
    assert pairs == [("rgb", "tir_near")]
    assert sync.pending() == [0, 1]


def test_full_queues_evict_their_oldest_unmatched_message_and_count_it():
    sync, pairs = make(queue_size=3)
    for i in range(5):
        sync.add(0, stamped(0, f"rgb{i}"), i * 100 * MS)
    assert sync.pending() == [3, 0] and sync.counters.evicted == 2
    sync.add(1, stamped(0, "tir"), 0)           # rgb0 was evicted: no partner any more
    assert pairs == []
    sync.add(1, stamped(0, "tir"), 200 * MS)
    assert pairs == [("rgb2", "tir")]


def test_a_second_message_with_the_same_stamp_replaces_the_first():
    sync, pairs = make()
    sync.add(0, stamped(0, "first"), 50 * MS)
    sync.add(0, stamped(0, "second"), 50 * MS)
    sync.add(1, stamped(0, "tir"), 50 * MS)
    assert pairs == [("second", "tir")] and sync.counters.replaced == 1


def test_the_callback_runs_with_the_synchroniser_lock_held():
    held = []
    sync = ApproximateTimeSync(2, 5, 0.01, lambda a, b: held.append(sync._lock.locked()))
    sync.add(0, stamped(0, "a"), 0)
    sync.add(1, stamped(0, "b"), 0)
    assert held == [True]


def test_the_pair_rate_equals_the_slower_stream():
    sync, pairs = make(queue_size=10, slop_ms=10.0)
    for i in range(300):          # 1 s of a 300 Hz clock: RGB at 30 Hz, thermal at 10 Hz with 3 ms offset
        t = i * 10 * MS // 3
        if i % 10 == 0:
            sync.add(0, stamped(0, f"rgb{i}"), t)
        if i % 30 == 0:
            sync.add(1, stamped(0, f"tir{i}"), t + 3 * MS)
    assert len(pairs) == 10
    assert all(a[3:] == b[3:] for a, b in pairs)


def test_bad_settings_are_refused_with_a_message():
    with pytest.raises(ValueError, match="queue_size"):
        ApproximateTimeSync(2, 0, 0.01, print)
    with pytest.raises(ValueError, match="slop"):
        ApproximateTimeSync(2, 5, 0.0, print)
    with pytest.raises(ValueError, match="two inputs"):
        ApproximateTimeSync(1, 5, 0.01, print)


@pytest.mark.skipif(importlib.util.find_spec("message_filters") is None,
                    reason="message_filters is not installed (ROS 2 from PyPI): compared only on a ROS distribution")
def test_same_pairs_as_message_filters_on_jittery_streams():
    import message_filters
    from builtin_interfaces.msg import Time

    class Source(message_filters.SimpleFilter):
        pass

    rng = np.random.default_rng(0)
    events = [(t + rng.normal(0, 4) * MS, 0) for t in np.arange(0, 2000, 33) * MS]
    events += [(t + rng.normal(0, 4) * MS, 1) for t in np.arange(5, 2000, 40) * MS]
    arrivals = sorted(events, key=lambda e: e[0] + rng.uniform(0, 20) * MS)
    ours, theirs = [], []
    sync = ApproximateTimeSync(2, 5, 0.015, lambda a, b: ours.append((a.tag, b.tag)))
    sources = [Source(), Source()]
    reference = message_filters.ApproximateTimeSynchronizer(sources, 5, 0.015)
    reference.registerCallback(lambda a, b: theirs.append((a.tag, b.tag)))
    for k, (stamp, index) in enumerate(arrivals):
        stamp = int(stamp)
        msg = SimpleNamespace(header=SimpleNamespace(stamp=Time(sec=stamp // 10**9, nanosec=stamp % 10**9)),
                              tag=f"{index}:{k}")
        sync.input(index)(msg)
        sources[index].signalMessage(msg)
    assert ours == theirs and len(ours) > 20
