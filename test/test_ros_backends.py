"""The node with an inference back end: a separate process over real DDS, configured through its lifecycle."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)")

from ckd_ros.ros.harness import NodeProcess, Probe  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SEC = 1_000_000_000
STARTUP_S = 90.0


def test_a_back_end_that_cannot_run_fails_configure_and_onnxruntime_then_tracks_like_torch(tmp_path: Path):
    from ckd_ros.data.synthetic import generate_sequence
    from ckd_ros.tracking import TrackerSpec, build_tracker

    sequence = generate_sequence(11, "normal", num_frames=8, size=(320, 256))
    offline = build_tracker(TrackerSpec())   # the embedded model, exact PyTorch
    expected = [offline.initialize(sequence.rgb[0], sequence.thermal[0], sequence.boxes[0]).box]
    expected += [offline.track(sequence.rgb[i], sequence.thermal[i]).box for i in range(1, len(sequence))]

    # TensorRT on a CPU device: without the package the log names the pip install, with it the device
    node = NodeProcess(60, tmp_path / "node.log", {"backend": "tensorrt", "precision": "fp16", "device": "cpu",
                                                   "diagnostics_period": 0.25}).start()
    probe = None
    try:
        probe = Probe(60)
        assert node.wait_for_log("configure failed", STARTUP_S), node.log()
        assert "BackendUnavailableError: backend tensorrt" in node.log()
        assert "pip install tensorrt" in node.log() or "builds an engine for an NVIDIA GPU" in node.log()
        assert probe.lifecycle_state() == "unconfigured" and node.alive()

        assert probe.set_parameters({"backend": "onnxruntime", "precision": "exact"})[0].successful
        assert probe.change_state("configure") and probe.lifecycle_state() == "inactive", node.log()
        assert "backend onnxruntime" in node.log()
        assert probe.change_state("activate") and probe.lifecycle_state() == "active", node.log()
        assert probe.wait_for_subscribers(30.0), node.log()
        assert probe.warm_up(30.0), node.log()
        assert probe.set_parameters({"initial_box": [float(v) for v in sequence.boxes[0]]})[0].successful
        got = []
        for i in range(len(sequence)):   # the first pair initialises on initial_box
            stamp = 1700000000 * SEC + i * 33_333_333
            probe.publish_pair(sequence.rgb[i], sequence.thermal[i], stamp)
            item = probe.wait_for_target(stamp, 30.0)
            assert item is not None, f"no ~/target for frame {i}\n{node.log()}"
            got.append([item.msg.x, item.msg.y, item.msg.width, item.msg.height])
        np.testing.assert_allclose(got, expected, atol=1e-2)
        assert node.alive()
    finally:
        if probe is not None:
            probe.close()
        node.stop()
