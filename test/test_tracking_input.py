"""Bad input gives a clear exception and leaves the tracker usable."""
from __future__ import annotations

import numpy as np
import pytest

from ckd_ros.tracking import (CKDTracker, RegistrationError, TrackerInputError, TrackerNotInitializedError,
                              TrackStatus)
from tracking_helpers import CorrelationNet, occlusion_frames


@pytest.fixture(scope="module")
def seq():
    return occlusion_frames(6, range(0))


@pytest.fixture()
def tracker(seq):
    rgbs, thermals, truth = seq
    t = CKDTracker(CorrelationNet())
    t.initialize(rgbs[0], thermals[0], truth[0])
    return t


def test_tracking_before_initialisation_raises_and_says_why(seq):
    t = CKDTracker(CorrelationNet())
    assert t.status == TrackStatus.UNINITIALIZED
    with pytest.raises(TrackerNotInitializedError, match="before initialize"):
        t.track(seq[0][1], seq[1][1])
    t.initialize(seq[0][0], seq[1][0], seq[2][0])
    t.reset()
    with pytest.raises(TrackerNotInitializedError):
        t.track(seq[0][1], seq[1][1])


BAD_RGB = {
    "grey image": (np.zeros((240, 320), np.uint8), "HxWx3"),
    "four channels": (np.zeros((240, 320, 4), np.uint8), "HxWx3"),
    "float pixels": (np.zeros((240, 320, 3), np.float32), "uint8"),
    "empty image": (np.zeros((0, 320, 3), np.uint8), "empty"),
    "not an array": ([[0, 0, 0]], "numpy array"),
}
BAD_THERMAL = {
    "int32 pixels": (np.zeros((240, 320), np.int32), "uint8, uint16"),
    "two channels": (np.zeros((240, 320, 2), np.uint8), "HxW, HxWx1 or HxWx3"),
    "empty image": (np.zeros((240, 0), np.uint16), "empty"),
    "all NaN temperatures": (np.full((240, 320), np.nan, np.float32), "no finite value"),
    "other size, no homography": (np.zeros((120, 160), np.uint8), "homography"),
}


@pytest.mark.parametrize("name", sorted(BAD_RGB))
def test_a_bad_rgb_image_is_rejected_and_tracking_continues(tracker, seq, name):
    image, message = BAD_RGB[name]
    before = tracker.state
    with pytest.raises(TrackerInputError, match=message):
        tracker.track(image, seq[1][1])
    assert tracker.state == before and tracker.status == TrackStatus.TRACKING
    assert tracker.track(seq[0][1], seq[1][1]).frame_index == 1


@pytest.mark.parametrize("name", sorted(BAD_THERMAL))
def test_a_bad_thermal_image_is_rejected_and_tracking_continues(tracker, seq, name):
    image, message = BAD_THERMAL[name]
    before = tracker.state
    error = RegistrationError if "homography" in message else TrackerInputError
    with pytest.raises(error, match=message):
        tracker.track(seq[0][1], image)
    assert tracker.state == before
    assert tracker.track(seq[0][1], seq[1][1]).status == TrackStatus.TRACKING


BAD_BOXES = {
    "NaN": ([10, float("nan"), 20, 20], "NaN or infinite"),
    "infinite": ([10, 10, float("inf"), 20], "NaN or infinite"),
    "zero width": ([10, 10, 0, 20], "positive"),
    "negative height": ([10, 10, 20, -5], "positive"),
    "right of the image": ([320, 10, 20, 20], "outside"),
    "above the image": ([10, -30, 20, 20], "outside"),
    "huge": ([0, 0, 1e30, 1e30], "more than 4 times the size"),
    "three numbers": ([10, 10, 20], "4 numbers"),
    "text": (["a", 1, 2, 3], "4 numbers"),
}


@pytest.mark.parametrize("name", sorted(BAD_BOXES))
def test_a_bad_initial_box_is_rejected_and_the_previous_target_is_kept(tracker, seq, name):
    box, message = BAD_BOXES[name]
    before = tracker.state
    with pytest.raises(TrackerInputError, match=message):
        tracker.initialize(seq[0][2], seq[1][2], box)
    assert tracker.state == before and tracker.status == TrackStatus.TRACKING
    assert tracker.track(seq[0][1], seq[1][1]).frame_index == 1


def test_a_box_partly_outside_the_image_is_accepted():
    rgbs, thermals, _ = occlusion_frames(2, range(0))
    t = CKDTracker(CorrelationNet())
    assert t.initialize(rgbs[0], thermals[0], [-10, -10, 40, 40]).status == TrackStatus.TRACKING
    box = t.track(rgbs[1], thermals[1]).box
    assert box[0] >= 0 and box[1] >= 0


def test_a_network_without_config_is_refused():
    import torch
    with pytest.raises(TypeError, match="config"):
        CKDTracker(torch.nn.Linear(2, 2))
