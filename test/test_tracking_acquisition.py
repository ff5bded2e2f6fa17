"""Choosing the target from detector boxes: which detections count, which one starts a track, when a LOST
track may restart from one, and which detections are too far from where the target was last seen."""
from __future__ import annotations

import pytest

from ckd_ros.tracking import TrackStatus
from ckd_ros.tracking.acquisition import (SOURCE_DETECTIONS, SOURCE_REACQUIRED, AcquisitionConfig, Detection,
                                          DetectionBuffer, TrackMemory, centre_distance, eligible, pick_initial,
                                          pick_reacquire)

HW = (256, 320)
SEC = 1_000_000_000


def det(x, y, w, h, cls="car", score=0.9):
    return Detection((float(x), float(y), float(w), float(h)), cls, score)


def test_only_accepted_classes_with_enough_score_are_eligible():
    config = AcquisitionConfig(class_ids=("car",), min_score=0.5)
    dets = [det(0, 0, 10, 10), det(0, 0, 10, 10, "person"), det(0, 0, 10, 10, score=0.49),
            det(0, 0, 0.5, 10), det(0, 0, float("nan"), 10)]
    assert eligible(dets, config) == [dets[0]]
    assert len(eligible(dets[:3], AcquisitionConfig(min_score=0.0))) == 3      # empty class list: any class


@pytest.mark.parametrize("pick,expected", [("highest_score", 1), ("largest", 2), ("nearest_point", 0),
                                           ("nearest_last", 3)])
def test_each_pick_rule_chooses_its_detection(pick, expected):
    dets = [det(150, 118, 20, 20, score=0.6),      # at the image centre
            det(10, 10, 20, 20, score=0.99),       # most confident
            det(200, 150, 80, 80, score=0.7),      # largest
            det(290, 10, 20, 20, score=0.8)]       # where the previous target was
    config = AcquisitionConfig(pick=pick, min_score=0.5)
    assert pick_initial(dets, config, HW, last_box=(285, 5, 25, 25)) is dets[expected]


def test_nearest_point_uses_the_configured_point_and_nearest_last_without_a_track_falls_back_to_it():
    dets = [det(150, 118, 20, 20), det(0, 0, 20, 20)]
    assert pick_initial(dets, AcquisitionConfig(pick="nearest_point", point=(5.0, 5.0)), HW) is dets[1]
    assert pick_initial(dets, AcquisitionConfig(pick="nearest_last"), HW, last_box=None) is dets[0]
    assert pick_initial([det(0, 0, 5, 5, score=0.1)], AcquisitionConfig(), HW) is None


def test_reacquisition_takes_the_best_match_within_max_distance_and_names_why_it_took_none():
    last = (100.0, 100.0, 40.0, 40.0)                           # diagonal 56.6 px
    config = AcquisitionConfig(max_distance=1.0, reacquire_after_s=1.0)
    near_wrong_size = det(105, 100, 120, 120, score=0.99)
    near_same_size = det(120, 110, 42, 38, score=0.6)
    far = det(250, 200, 40, 40, score=0.99)
    chosen, _ = pick_reacquire([far, near_wrong_size, near_same_size], config, last)
    assert chosen is near_same_size
    chosen, why = pick_reacquire([far], config, last)
    assert chosen is None and "box diagonals from the last confident box (max_distance 1)" in why
    assert centre_distance(far.box, last) > 3.0
    chosen, why = pick_reacquire([det(100, 100, 40, 40, "person")], AcquisitionConfig(class_ids=("car",)), last)
    assert chosen is None and "accepted class" in why


def test_a_track_asks_for_a_start_when_uninitialised_or_lost_long_enough_and_never_over_a_pending_box():
    config = AcquisitionConfig(init_from_detections=True, reacquire_after_s=1.0)
    memory = TrackMemory()
    assert memory.need(config, TrackStatus.UNINITIALIZED, pending_start=False).source == SOURCE_DETECTIONS
    assert memory.need(config, TrackStatus.UNINITIALIZED, pending_start=True) is None
    assert memory.need(AcquisitionConfig(reacquire_after_s=1.0), TrackStatus.UNINITIALIZED, False) is None

    memory.observe(TrackStatus.TRACKING, (10, 10, 20, 20), 5 * SEC, started=True)
    memory.observe(TrackStatus.TRACKING, (12, 10, 20, 20), 6 * SEC)
    memory.observe(TrackStatus.LOST, (90, 90, 200, 200), int(6.5 * SEC))      # the LOST estimate drifts
    assert memory.need(config, TrackStatus.LOST, False) is None               # lost for 0.5 s only
    memory.observe(TrackStatus.LOST, (90, 90, 200, 200), 7 * SEC)
    need = memory.need(config, TrackStatus.LOST, False)
    assert need.source == SOURCE_REACQUIRED and need.last_confident_box == (12, 10, 20, 20)
    assert need.after_ns == 7 * SEC - 1                                       # frames lost for the whole wait
    assert memory.need(config, TrackStatus.TRACKING, False) is None
    assert memory.need(AcquisitionConfig(init_from_detections=True), TrackStatus.LOST, False) is None


def test_the_buffer_returns_newest_first_after_a_stamp_forgets_used_arrays_and_stays_bounded():
    buffer = DetectionBuffer(size=3)
    for k in range(5):
        buffer.add(k * SEC, [det(k, 0, 10, 10)])
    assert [s for s, _ in buffer.newest_first()] == [4 * SEC, 3 * SEC, 2 * SEC]
    assert [s for s, _ in buffer.newest_first(after_ns=3 * SEC)] == [4 * SEC]
    buffer.discard_through(3 * SEC)
    assert len(buffer) == 1


def test_bad_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="pick must be one of"):
        AcquisitionConfig(pick="closest")
    with pytest.raises(ValueError, match="min_score"):
        AcquisitionConfig(min_score=1.5)
    assert not AcquisitionConfig().enabled and AcquisitionConfig(reacquire_after_s=2.0).enabled
