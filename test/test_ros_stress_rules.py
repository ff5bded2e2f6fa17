"""The rules behind the node's refusals and the stress suite's verdicts, without ROS: which stamps are new
frames, how log lines are throttled, what a stall report says, when a soak passes."""
from __future__ import annotations

import numpy as np

from ckd_ros.ros.stall import stall_problem
from ckd_ros.ros.stamps import StampGuard
from ckd_ros.ros.stress.report import CaseResult, SoakCriteria, case_table, soak_table, soak_verdict
from ckd_ros.ros.throttle import KeyedThrottle, problem_kind

SEC = 1_000_000_000
NOW = 1_700_000_000 * SEC


def test_stamps_must_increase_and_not_lie_in_the_future():
    guard = StampGuard()
    assert guard.check(NOW, NOW, 5.0).accepted
    assert guard.check(NOW, NOW, 5.0).kind == "duplicate"
    older = guard.check(NOW - SEC, NOW, 5.0)
    assert not older.accepted and older.kind == "older" and "1.000 s older" in older.message
    future = guard.check(NOW + 10 * SEC, NOW, 5.0)
    assert not future.accepted and future.kind == "future" and "10.000 s ahead" in future.message
    assert guard.check(NOW + 2 * SEC, NOW, 5.0).accepted           # within the lead, newer: fine
    assert guard.check(NOW + 10 * SEC, NOW, 0.0).accepted          # 0 turns the lead check off


def test_a_far_past_camera_clock_is_accepted_and_an_unknown_node_clock_skips_the_future_check():
    guard = StampGuard()
    assert guard.check(42 * SEC, NOW, 5.0).accepted                 # a driver stamping time since boot
    assert guard.check(NOW + 3600 * SEC, 0, 5.0).accepted           # sim time before the first /clock


def test_stamps_that_go_back_and_stay_back_are_taken_as_a_new_timeline():
    guard = StampGuard(restart_after_s=3.0)
    assert guard.check(NOW, NOW, 5.0).accepted
    early = [guard.check(NOW - 100 * SEC + k * SEC // 10, NOW + k * SEC // 10, 5.0) for k in range(29)]
    assert not any(c.accepted for c in early)
    restart = guard.check(NOW - 90 * SEC, NOW + 3 * SEC, 5.0)
    assert restart.accepted and restart.kind == "restart"
    assert guard.check(NOW - 89 * SEC, NOW + 4 * SEC, 5.0).accepted


def test_one_log_line_per_kind_of_problem_per_period():
    throttle = KeyedThrottle(5.0)
    short = problem_kind("RGB image data holds 100 bytes, expected 960 x 256 = 245760")
    assert short == problem_kind("RGB image data holds 7 bytes, expected 12 x 3 = 36")
    step = problem_kind("RGB image step 957 is smaller than a row of 320 rgb8 pixels (960 bytes)")
    assert throttle.allow(short, 0.0) and not throttle.allow(short, 4.9) and throttle.allow(short, 5.0)
    assert throttle.allow(step, 1.0)                                # another kind is not hidden


def test_the_throttle_does_not_grow_without_bound_under_invented_kinds():
    throttle = KeyedThrottle(5.0, max_keys=8)
    allowed = [throttle.allow(f"kind {chr(65 + k)}", 0.0) for k in range(20)]
    assert sum(allowed) == 8 and len(throttle._last) == 8
    assert throttle.allow("kind late", 6.0)                         # old kinds expire


def test_a_stall_names_the_silent_stream_or_the_stamp_gap():
    receipts = {"RGB": NOW, "thermal": NOW - 10 * SEC}
    stamps = {"RGB": NOW, "thermal": NOW - 10 * SEC}
    rates = {"RGB": 10.0, "thermal": 0.0}
    text = stall_problem(NOW, NOW - 10 * SEC, 1.0, receipts, stamps, rates, 0.02)
    assert "thermal/image has delivered no usable image for 10.0 s while RGB arrives at 10.0 Hz" in text
    both = stall_problem(NOW, None, 1.0, {"RGB": NOW, "thermal": NOW}, {"RGB": NOW, "thermal": NOW + SEC // 2},
                         {"RGB": 10.0, "thermal": 10.0}, 0.02)
    assert "no pair yet" in both and "0.500 s apart and sync.slop is 0.02 s" in both
    assert stall_problem(NOW, NOW - SEC // 10, 1.0, receipts, stamps, rates, 0.02) is None      # pairs fresh
    assert stall_problem(NOW, None, 1.0, {}, {}, rates, 0.02) is None                          # no camera at all


def _soak(rss_end_factor: float, late_latency: float, seconds: int = 600):
    t = np.arange(seconds, dtype=float)
    rss = np.where(t < 60, 200e6 + t * 1e6, 260e6 * (1 + (rss_end_factor - 1) * (t - 60) / (seconds - 60)))
    lt = np.arange(0, seconds, 1 / 30)
    lat = np.where(lt < seconds / 2, 0.020, late_latency) + 0.002 * np.sin(lt)
    return soak_verdict(t, rss.astype(int), [20] * seconds, [30] * seconds, lt, lat,
                        SoakCriteria.for_duration(seconds))


def test_a_soak_passes_with_flat_memory_and_latency_after_warm_up():
    verdict = _soak(1.02, 0.021)
    assert verdict["passed"], verdict["failures"]
    assert abs(verdict["rss_growth"] - 0.02) < 0.005                 # the warm-up's growth is not counted
    assert len(verdict["latency_windows"]) == 9 and verdict["latency_p95_ratio"] < 1.2


def test_a_soak_fails_on_memory_growth_or_latency_creep_and_says_which():
    grown = _soak(1.08, 0.021)
    assert not grown["passed"] and "RSS grew" in grown["failures"][0]
    slow = _soak(1.0, 0.040)
    assert not slow["passed"] and "latency p95" in slow["failures"][0]


def test_a_soak_places_its_memory_growth_in_the_kernels_rss_parts():
    t = np.arange(600, dtype=float)
    anon = (300e6 + np.where(t < 60, 0, (t - 60) * 5e4)).astype(int)        # private memory grows 27 MB
    shmem = np.full(600, 35 * 2**20)                                        # the DDS segment stays put
    lt = np.arange(0, 600, 1 / 30)
    verdict = soak_verdict(t, anon + shmem, [20] * 600, [30] * 600, lt, np.full(lt.size, 0.02),
                           SoakCriteria.for_duration(600), rss_parts={"anon": anon, "shmem": shmem})
    parts = verdict["rss_parts"]
    assert parts["shmem"]["mib_end"] == parts["shmem"]["mib_after_warmup"] == 35.0
    assert 22 < parts["anon"]["mib_end"] - parts["anon"]["mib_after_warmup"] < 26
    assert "RSS parts: anon" in soak_table(verdict | {"seconds": 600, "fps": 30, "size": "640x512"})


def test_a_case_row_shows_each_check():
    row = CaseResult("rgb_data_short", "half the data", alive=True, log_lines=1, log_limit=2,
                     counter="refused_images", counter_delta=5, tracked_after=True)
    failed = CaseResult("x", "y")
    failed.check(False, "the node process died")
    table = case_table([row, failed])
    assert "| rgb_data_short | pass | yes | 1 (2) | refused_images (+5) | yes |" in table
    assert "| x | FAIL: the node process died | NO |" in table
