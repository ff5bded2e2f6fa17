"""The newest-pair mailbox drops stale pairs instead of queueing them; the history finds pairs by stamp."""
from __future__ import annotations

import threading
import time

import pytest

from ckd_ros.ros.pairs import ImagePair, LatestPairMailbox, PairHistory


def pair(stamp: int) -> ImagePair:
    return ImagePair(rgb=f"rgb{stamp}", thermal=f"tir{stamp}", stamp_ns=stamp, received_ns=stamp)


def test_the_worker_gets_the_newest_pair_and_overwritten_pairs_count_as_dropped():
    box = LatestPairMailbox()
    assert box.put(pair(1)) is False
    assert box.put(pair(2)) is True
    assert box.put(pair(3)) is True
    assert box.take(0.1).stamp_ns == 3
    assert box.dropped == 2
    assert box.take(0.01) is None          # nothing new: no pair is processed twice


def test_take_waits_for_a_pair_and_close_wakes_the_worker():
    box = LatestPairMailbox()
    threading.Timer(0.05, lambda: box.put(pair(7))).start()
    assert box.take(2.0).stamp_ns == 7
    threading.Timer(0.05, box.close).start()
    started = time.monotonic()
    assert box.take(5.0) is None
    assert time.monotonic() - started < 2.0


def test_history_finds_recent_pairs_by_stamp_and_forgets_old_ones():
    history = PairHistory(3)
    for stamp in range(5):
        history.add(pair(stamp))
    assert history.find(4).rgb == "rgb4" and history.find(2).rgb == "rgb2"
    assert history.find(1) is None
    assert history.newest().stamp_ns == 4 and history.span() == (2, 4)
    with pytest.raises(ValueError):
        PairHistory(0)


def test_an_initialise_request_for_a_frame_still_in_flight_waits_for_it():
    history = PairHistory(4)
    history.add(pair(100))
    late = pair(200)
    threading.Timer(0.2, history.add, args=(late,)).start()
    started = time.monotonic()
    assert history.wait_for(200, timeout=5.0) is late
    assert 0.1 < time.monotonic() - started < 4.0


def test_a_frame_older_than_the_newest_held_is_not_waited_for():
    history = PairHistory(4)
    history.add(pair(300))
    started = time.monotonic()
    assert history.wait_for(250, timeout=5.0) is None
    assert history.wait_for(300, timeout=5.0).stamp_ns == 300
    assert time.monotonic() - started < 1.0
    assert PairHistory(2).wait_for(1, timeout=0.05) is None
