"""The tracker-step benchmark reports stage times that add up and a non-network share in [0, 1]."""
from __future__ import annotations

from ckd_ros.tracking import CKDTracker, TrackerConfig
from ckd_ros.tracking.bench import bench_size
from tracking_helpers import CorrelationNet


def test_step_benchmark_splits_a_step_into_preprocess_network_and_postprocess():
    tracker = CKDTracker(CorrelationNet(), TrackerConfig(profile=True))
    r = bench_size(tracker, (640, 512), iters=3, warmup=1, thermal_dtype="uint16")
    assert r["size"] == "640x512" and r["thermal"] == "uint16"
    assert min(r["preprocess_ms"], r["network_ms"], r["postprocess_ms"]) > 0
    parts = r["preprocess_ms"] + r["network_ms"] + r["postprocess_ms"]
    assert parts <= r["step_ms"] * 1.5 and parts >= r["step_ms"] * 0.5
    assert 0.0 < r["non_network_share"] < 1.0
