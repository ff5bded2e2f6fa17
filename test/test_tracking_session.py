"""The ROS-free track session: what the node publishes for a stream of stamped frames, without rclpy."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ckd_ros.data.synthetic import generate_sequence
from ckd_ros.tracking import (PendingBoxError, StatusConfig, TrackerConfig, TrackerSpec, TrackSession, TrackStatus, build_tracker,
                              camera_bearing)

NS = 1_000_000_000
FRAME_NS = NS // 30


@pytest.fixture(scope="module")
def sequence():
    return generate_sequence(7, "normal", num_frames=8)


@pytest.fixture()
def session() -> TrackSession:
    return TrackSession(build_tracker(TrackerSpec()), name="cam")


def test_uninitialised_session_answers_uninitialized_for_every_frame(session, sequence):
    out = session.process(sequence.rgb[0], sequence.thermal[0], 1 * NS)
    assert out.status == TrackStatus.UNINITIALIZED and out.track_id == "" and out.result is None
    assert session.status == TrackStatus.UNINITIALIZED


def test_each_initialisation_starts_a_new_track_id_and_tracks_later_frames(session, sequence):
    first = session.initialize(sequence.rgb[0], sequence.thermal[0], sequence.boxes[0], 10 * NS)
    assert first.track_id == "cam-1" and first.status == TrackStatus.TRACKING
    assert first.box == pytest.approx(tuple(sequence.boxes[0]))
    for i in range(1, 5):
        out = session.process(sequence.rgb[i], sequence.thermal[i], 10 * NS + i * FRAME_NS)
        assert out.track_id == "cam-1" and out.result.frame_index == i
    # the embedded model follows the synthetic target: the velocity is in px/s along its motion
    truth_v = (sequence.boxes[4, :2] - sequence.boxes[3, :2]) / (FRAME_NS / NS)
    assert np.isfinite(out.velocity).all() and math.hypot(*out.velocity) < 10 * max(1.0, math.hypot(*truth_v))
    second = session.initialize(sequence.rgb[5], sequence.thermal[5], sequence.boxes[5], 20 * NS)
    assert second.track_id == "cam-2" and second.velocity == (0.0, 0.0)


def test_frames_stamped_at_or_before_the_start_frame_are_not_answered(session, sequence):
    session.initialize(sequence.rgb[3], sequence.thermal[3], sequence.boxes[3], 5 * NS)
    assert session.process(sequence.rgb[2], sequence.thermal[2], 4 * NS) is None
    assert session.process(sequence.rgb[3], sequence.thermal[3], 5 * NS) is None
    assert session.process(sequence.rgb[4], sequence.thermal[4], 5 * NS + FRAME_NS) is not None


def test_a_requested_box_starts_on_the_next_frame_and_a_bad_one_is_refused_without_losing_the_track(
        session, sequence):
    session.request(sequence.boxes[0])
    out = session.process(sequence.rgb[0], sequence.thermal[0], NS)
    assert out.track_id == "cam-1" and out.result.frame_index == 0 and session.pending_box is None
    session.request([5000.0, 5000.0, 10.0, 10.0])          # valid numbers, outside this image
    with pytest.raises(PendingBoxError, match="outside"):
        session.process(sequence.rgb[1], sequence.thermal[1], NS + FRAME_NS)
    out = session.process(sequence.rgb[2], sequence.thermal[2], NS + 2 * FRAME_NS)
    assert out.track_id == "cam-1" and out.result.frame_index == 1
    with pytest.raises(ValueError, match="non-finite"):
        session.request([float("nan"), 0, 10, 10])


def test_time_since_confident_counts_from_the_last_tracking_frame(sequence):
    # thresholds no score reaches: every tracked frame is unconfident
    never_confident = TrackerConfig(status=StatusConfig(lost_threshold=1.0, recover_threshold=1.0, lost_patience=1))
    session = TrackSession(build_tracker(TrackerSpec(tracker=never_confident, calibration="none")))
    session.initialize(sequence.rgb[0], sequence.thermal[0], sequence.boxes[0], NS)
    out = session.process(sequence.rgb[1], sequence.thermal[1], NS + FRAME_NS)
    assert out.status == TrackStatus.LOST
    out = session.process(sequence.rgb[2], sequence.thermal[2], NS + 3 * FRAME_NS)
    assert out.status == TrackStatus.LOST and out.time_since_confident == pytest.approx(3 * FRAME_NS / NS)


def test_reset_forgets_the_target_and_names_the_track_that_ended(session, sequence):
    assert session.reset() == ""
    session.initialize(sequence.rgb[0], sequence.thermal[0], sequence.boxes[0], NS)
    assert session.reset() == "cam-1" and session.status == TrackStatus.UNINITIALIZED
    assert session.process(sequence.rgb[1], sequence.thermal[1], 2 * NS).status == TrackStatus.UNINITIALIZED


def test_bearing_is_the_unit_ray_through_the_box_centre_when_intrinsics_are_known():
    k = [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]
    assert camera_bearing(k, 320.0, 240.0) == pytest.approx((0.0, 0.0, 1.0))
    x, y, z = camera_bearing(k, 820.0, 240.0)
    assert (x, y, z) == pytest.approx((1 / math.sqrt(2), 0.0, 1 / math.sqrt(2)))
    assert camera_bearing([0.0] * 9, 1.0, 1.0) is None       # an uncalibrated camera_info
