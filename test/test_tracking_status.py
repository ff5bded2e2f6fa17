"""Lost-target handling: status from the windowed peak with hysteresis, re-initialisation, wider search."""
from __future__ import annotations

import numpy as np
import pytest

from ckd_ros.tracking import (CKDTracker, LostSearchConfig, StatusConfig, StatusFilter, TrackerConfig,
                              TrackStatus)
from tracking_helpers import CorrelationNet, occlusion_frames

STATUS = StatusConfig(lost_threshold=0.5, recover_threshold=0.7, lost_patience=2, recover_patience=2)


def _track(config: TrackerConfig, n: int = 30, occluded=range(10, 20), scales=(1.0,)):
    rgbs, thermals, truth = occlusion_frames(n, occluded)
    tracker = CKDTracker(CorrelationNet(scales=scales), config)
    results = [tracker.initialize(rgbs[0], thermals[0], truth[0])]
    results += [tracker.track(rgb, tir) for rgb, tir in zip(rgbs[1:], thermals[1:])]
    return results, truth


def test_status_goes_lost_while_the_target_is_occluded_and_recovers_after():
    results, truth = _track(TrackerConfig(status=STATUS))
    status = [r.status for r in results]
    assert all(s == TrackStatus.TRACKING for s in status[:10])
    # two low frames (patience 2) after the occluder appears at frame 10
    assert status[11] == TrackStatus.LOST and all(s == TrackStatus.LOST for s in status[11:20])
    assert all(r.score < STATUS.lost_threshold for r in results[10:20])
    assert all(r.score > 0.9 for r in results[1:10])
    assert all(s == TrackStatus.TRACKING for s in status[23:])
    errors = [abs(r.box[0] - t[0]) + abs(r.box[1] - t[1]) for r, t in zip(results[23:], truth[23:])]
    assert max(errors) <= 4.0


def test_hysteresis_ignores_single_low_frames_and_scores_between_the_thresholds():
    f = StatusFilter(STATUS)
    f.start()
    assert [f.update(s) for s in (0.4, 0.9, 0.4, 0.6)] == [TrackStatus.TRACKING] * 4
    assert f.update(0.4) == TrackStatus.TRACKING and f.update(0.3) == TrackStatus.LOST
    # 0.6 is above lost but below recover: stays lost; one high frame is not enough either
    assert [f.update(s) for s in (0.6, 0.8, 0.6, 0.8)] == [TrackStatus.LOST] * 4
    assert f.update(0.8) == TrackStatus.TRACKING
    assert f.update(float("nan")) == TrackStatus.TRACKING and f.update(float("nan")) == TrackStatus.LOST


def test_status_thresholds_must_be_ordered():
    with pytest.raises(ValueError, match="lost_threshold <= recover_threshold"):
        StatusFilter(StatusConfig(lost_threshold=0.6, recover_threshold=0.5))


def test_reinitialisation_during_a_loss_restores_tracking_at_the_new_box():
    rgbs, thermals, truth = occlusion_frames(30, range(10, 30))
    tracker = CKDTracker(CorrelationNet(), TrackerConfig(status=STATUS))
    tracker.initialize(rgbs[0], thermals[0], truth[0])
    for t in range(1, 15):
        tracker.track(rgbs[t], thermals[t])
    assert tracker.status == TrackStatus.LOST
    rgbs2, thermals2, truth2 = occlusion_frames(30, range(0))
    result = tracker.initialize(rgbs2[15], thermals2[15], truth2[15])
    assert result.status == TrackStatus.TRACKING and result.box == tuple(truth2[15]) and result.frame_index == 0
    nxt = tracker.track(rgbs2[16], thermals2[16])
    assert nxt.status == TrackStatus.TRACKING and abs(nxt.box[0] - truth2[16][0]) <= 3


def test_wider_search_after_a_loss_is_off_by_default_and_holds_the_last_confident_box_when_on():
    # a two-scale matcher: without the option it drifts to clutter during the occlusion and never recovers
    plain, truth = _track(TrackerConfig(status=STATUS), scales=(1.0, 0.5))
    assert {r.search_factor for r in plain} == {4.0}
    assert plain[-1].status == TrackStatus.LOST and abs(plain[-1].box[0] - truth[-1][0]) > 20
    wide, _ = _track(TrackerConfig(status=STATUS, lost_search=LostSearchConfig(enabled=True, search_factor=8.0)),
                     scales=(1.0, 0.5))
    # identical to the default tracker until the loss is declared
    assert [r.box for r in wide[:11]] == [r.box for r in plain[:11]]
    lost = [r for r in wide if r.status == TrackStatus.LOST]
    assert len(lost) >= 5 and all(r.search_factor == 8.0 for r in lost[1:])
    held = {r.box for r in lost if r.score < STATUS.recover_threshold}
    assert len(held) == 1 and abs(next(iter(held))[0] - truth[9][0]) <= 3   # the last box before occlusion
    assert wide[-1].status == TrackStatus.TRACKING and wide[-1].search_factor == 4.0
    assert abs(wide[-1].box[0] - truth[-1][0]) <= 4


def test_lost_search_factor_must_not_shrink_the_search():
    with pytest.raises(ValueError, match="lost search factor"):
        CKDTracker(CorrelationNet(), TrackerConfig(lost_search=LostSearchConfig(enabled=True, search_factor=3.0)))
