"""The tracker node as a robot runs it: a separate process, real DDS, the reference checkpoint.

Every test uses its own ROS_DOMAIN_ID (localhost discovery) and kills its node process in all cases.
"""
from __future__ import annotations

import math
import pickle
import time
from pathlib import Path
from statistics import median_high

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")

from ckd_ros.ros.harness import NodeProcess, Probe  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SEC = 1_000_000_000
STARTUP_S = 90.0   # process start + model load on a busy 2-core machine


@pytest.fixture(scope="module")
def checkpoint(reference_dir: Path) -> str:
    return str(reference_dir / "ckd_small.pth.tar")


@pytest.fixture(scope="module")
def sequence():
    from ckd_ros.data.synthetic import generate_sequence
    return generate_sequence(7, "normal", num_frames=10, size=(320, 256))


def run(domain_id: int, tmp_path: Path, params: dict, **kwargs) -> tuple[NodeProcess, Probe]:
    node = NodeProcess(domain_id, tmp_path / "node.log", {"diagnostics_period": 0.25, **params}, **kwargs).start()
    namespace = kwargs.get("namespace", "")
    rgb_topic = (kwargs.get("remaps") or {}).get("rgb/image")
    try:
        probe = Probe(domain_id, tracker=f"{namespace}/ckd_tracker", namespace=namespace,
                      rgb_topic=f"{namespace}/{rgb_topic}" if rgb_topic else None)
    except Exception:
        node.stop()
        raise
    return node, probe


def wait_active(node: NodeProcess, probe: Probe) -> None:
    assert node.wait_for_log("subscribed to", STARTUP_S), node.log()
    assert probe.wait_for_subscribers(30.0), node.log()
    assert probe.warm_up(30.0), node.log()  # both image links deliver before a test counts anything


def test_outputs_carry_the_input_header_and_equal_the_offline_tracker(tmp_path, checkpoint, sequence):
    """Initialised through the initial_box parameter, in a namespace with a remapped RGB topic."""
    from ckd_ros.model import load_checkpoint
    from ckd_ros.tracking import CKDTracker

    offline = CKDTracker(load_checkpoint(checkpoint), device="cpu")
    expected = [offline.initialize(sequence.rgb[0], sequence.thermal[0], sequence.boxes[0]).box]
    expected += [offline.track(sequence.rgb[i], sequence.thermal[i]).box for i in range(1, len(sequence))]

    node, probe = run(151, tmp_path, {"checkpoint": checkpoint, "device": "cpu",
                                      "initial_box": [float(v) for v in sequence.boxes[0]]},
                      namespace="/robot1", remaps={"rgb/image": "camera/color"})
    try:
        wait_active(node, probe)
        got = []
        for i in range(len(sequence)):
            stamp = 1700000000 * SEC + i * 33_333_333
            probe.publish_pair(sequence.rgb[i], sequence.thermal[i], stamp, frame_id=f"cam_{i}")
            item = probe.wait_for_target(stamp, 30.0)
            assert item is not None, f"no ~/target for frame {i}\n{node.log()}"
            assert item.msg.header.frame_id == f"cam_{i}"
            got.append(item.msg)
        np.testing.assert_allclose([[m.x, m.y, m.width, m.height] for m in got], expected, atol=1e-3)
        assert all(m.status == m.TRACKING for m in got) and len({m.id for m in got}) == 1
        from ckd_ros.ros.messages import vision_msgs_module
        if vision_msgs_module() is not None:
            # ~/detections and ~/target are separate topics: wait for every detection, not just the first
            assert probe.wait_until(lambda r: len(r.detections) >= len(sequence), 10), node.log()
            dets = probe.recording.detections
            assert [(d.msg.header.stamp, d.msg.header.frame_id) for d in dets] == \
                   [(m.header.stamp, m.header.frame_id) for m in got]
            last = dets[-1].msg.detections[0]
            assert last.id == got[-1].id
            assert last.bbox.center.position.x == pytest.approx(got[-1].x + got[-1].width / 2)
            assert last.results[0].hypothesis.score == pytest.approx(got[-1].score)
        else:
            assert "vision_msgs is not installed" in node.log()
        assert node.alive()
    finally:
        probe.close()
        node.stop()


def test_service_initialises_on_a_past_frame_and_reset_forgets_the_target(tmp_path, checkpoint, sequence):
    node, probe = run(152, tmp_path, {"checkpoint": checkpoint, "device": "cpu", "init_history_size": 5})
    try:
        wait_active(node, probe)
        stamps = []
        for i in range(4):
            stamps.append(probe.publish_pair(sequence.rgb[i], sequence.thermal[i], (10 + i) * SEC))
            item = probe.wait_for_target(stamps[-1], 30.0)
            assert item is not None and item.msg.status == item.msg.UNINITIALIZED
        # a box drawn on frame 1, answered after frame 3 arrived
        answer = probe.initialize(sequence.boxes[1], stamp_ns=stamps[1])
        assert answer.success, answer.message
        init = probe.wait_for_target(stamps[1], 10.0, status=1)
        assert init is not None
        assert [init.msg.x, init.msg.y, init.msg.width, init.msg.height] == pytest.approx(list(sequence.boxes[1]))
        stamp = probe.publish_pair(sequence.rgb[4], sequence.thermal[4], 14 * SEC)
        tracked = probe.wait_for_target(stamp, 30.0)
        assert tracked.msg.status == tracked.msg.TRACKING and tracked.msg.id == init.msg.id

        refused = probe.initialize(sequence.boxes[1], stamp_ns=3 * SEC)   # never received
        assert not refused.success and "no frame with stamp 3.0" in refused.message
        newest = probe.initialize(sequence.boxes[4])                       # zero stamp: the newest frame
        assert newest.success and newest.message != answer.message          # a new target id

        assert probe.reset().success
        stamp = probe.publish_pair(sequence.rgb[5], sequence.thermal[5], 15 * SEC)
        after = probe.wait_for_target(stamp, 30.0)
        assert after.msg.status == after.msg.UNINITIALIZED and after.msg.id == ""
        assert node.alive()
    finally:
        probe.close()
        node.stop()


def test_bad_boxes_are_refused_with_messages_and_the_node_keeps_tracking(tmp_path, checkpoint, sequence):
    node, probe = run(153, tmp_path, {"checkpoint": checkpoint, "device": "cpu"})
    try:
        wait_active(node, probe)
        refused = probe.initialize([10, 10, 20, 20])
        assert not refused.success and "no synchronised" in refused.message
        probe.publish_pair(sequence.rgb[0], sequence.thermal[0], 20 * SEC)
        assert probe.wait_for_target(20 * SEC, 30.0)
        for box, fragment in [([math.nan, 1, 20, 20], "non-finite"), ([10, 10, 0, 20], "at least 1 pixel"),
                              ([10, 10, 20, -5], "at least 1 pixel"), ([500, 10, 20, 20], "outside the 320x256"),
                              ([10, -80, 20, 30], "outside")]:
            answer = probe.initialize(box)
            assert not answer.success and fragment in answer.message, (box, answer.message)
        results = probe.set_parameters({"initial_box": [1.0, 2.0, 3.0]})
        assert not results[0].successful and "4 numbers" in results[0].reason
        results = probe.set_parameters({"initial_box": [900.0, 10.0, 20.0, 20.0]})
        assert not results[0].successful and "outside" in results[0].reason
        results = probe.set_parameters({"checkpoint": "/elsewhere.pth.tar"})
        assert not results[0].successful and "configured" in results[0].reason
        # still alive and usable: a good box through the parameter
        assert probe.set_parameters({"initial_box": [float(v) for v in sequence.boxes[1]]})[0].successful
        probe.publish_pair(sequence.rgb[1], sequence.thermal[1], 21 * SEC)
        item = probe.wait_for_target(21 * SEC, 30.0)
        assert item is not None and item.msg.status == item.msg.TRACKING
        assert node.alive()
    finally:
        probe.close()
        node.stop()


def _raw_image(encoding: str, width: int = 32, height: int = 24, bytes_per_pixel: int = 2):
    from sensor_msgs.msg import Image
    msg = Image(height=height, width=width, encoding=encoding, step=width * bytes_per_pixel)
    msg.data = bytes(height * width * bytes_per_pixel)
    return msg


def test_every_refused_encoding_is_named_in_the_log_and_counted_in_diagnostics(tmp_path, checkpoint, sequence):
    node, probe = run(154, tmp_path, {"checkpoint": checkpoint, "device": "cpu"})
    try:
        wait_active(node, probe)
        bad_rgb = ["mono16", "16UC1", "32FC1", "yuv422", "bayer_rggb8", "8UC3"]
        bad_thermal = ["rgba8", "bgra8", "yuv422", "16SC1", "64FC1"]
        sent = 0

        def refuse(role: str, encoding: str, sec: int) -> None:
            # Best-effort images may be lost on a loaded machine; the node logs each (role, encoding) it
            # refuses once, so a bad image is sent again (at a camera's pace) until its refusal is logged.
            nonlocal sent
            needle = f"refusing {role} image: {role} image encoding '{encoding}' is not supported"
            for _ in range(5):
                msg = _raw_image(encoding, bytes_per_pixel=8)
                msg.header.stamp.sec = sec
                if role == "RGB":
                    probe.rgb_pub.publish(msg)
                    probe.publish_thermal_only(sequence.thermal[0], sec * SEC)
                else:
                    probe.thermal_pub.publish(msg)
                    probe.publish_rgb_only(sequence.rgb[0], sec * SEC)
                sent += 1
                deadline = time.monotonic() + 2.0
                while time.monotonic() < deadline:
                    if needle in node.log():
                        return
                    time.sleep(0.05)
            raise AssertionError(f"{role} {encoding}: no refusal logged\n{node.log()}")

        for k, encoding in enumerate(bad_rgb):
            refuse("RGB", encoding, 30 + k)
        for k, encoding in enumerate(bad_thermal):
            refuse("thermal", encoding, 40 + k)

        def counts(values: dict) -> dict[str, int]:
            items = [i.split("=") for i in values.get("refused_encodings", "").split(", ") if "=" in i]
            return {k: int(v) for k, v in items}
        expected = {f"{role}:{e}" for role, names in (("RGB", bad_rgb), ("thermal", bad_thermal)) for e in names}
        deadline = time.monotonic() + 20
        values = {}
        while time.monotonic() < deadline and set(counts(values)) != expected:
            values = probe.diagnostics_values()
        assert set(counts(values)) == expected, values
        # every refusal is counted once: the diagnostics total is the sum per encoding, no more than was sent
        assert int(values["refused_images"]) == sum(counts(values).values()) <= sent
        assert values["pairs_synchronised"] == "0" and probe.recording.target == []
        # the node still processes good pairs
        probe.publish_pair(sequence.rgb[0], sequence.thermal[0], 50 * SEC)
        assert probe.wait_for_target(50 * SEC, 30.0) is not None
    finally:
        probe.close()
        node.stop()


def test_a_stalled_thermal_stream_stops_pairs_and_its_return_resumes_tracking(tmp_path, checkpoint, sequence):
    box = [float(v) for v in sequence.boxes[0]]
    node, probe = run(155, tmp_path, {"checkpoint": checkpoint, "device": "cpu", "initial_box": box,
                                      "stale_input_timeout": 0.5})
    try:
        wait_active(node, probe)

        def stream(seconds: float, thermal: bool) -> list[int]:
            stamps, end = [], time.monotonic() + seconds
            k = 0
            while time.monotonic() < end:
                i = k % len(sequence)
                stamp = probe.now_ns()
                if thermal:
                    probe.publish_pair(sequence.rgb[i], sequence.thermal[i], stamp)
                else:
                    probe.publish_rgb_only(sequence.rgb[i], stamp)
                stamps.append(stamp)
                k += 1
                time.sleep(0.1)
            return stamps

        before = stream(1.5, thermal=True)
        assert probe.wait_until(lambda r: any(_ns(m.msg.header.stamp) == before[-1] for m in r.target), 30.0)
        count = len(probe.recording.target)
        stalled = stream(2.0, thermal=False)
        values = probe.diagnostics_values()
        assert values["_message"] == "no synchronised RGB + thermal pair recently", values
        assert float(values["thermal_rate_hz"]) == 0.0 and float(values["rgb_rate_hz"]) > 3.0
        assert len(probe.recording.target) == count
        assert not any(_ns(m.msg.header.stamp) in set(stalled) for m in probe.recording.target)
        after = stream(1.5, thermal=True)
        assert probe.wait_until(lambda r: any(_ns(m.msg.header.stamp) == after[-1] for m in r.target), 30.0)
        resumed = [m.msg for m in probe.recording.target if _ns(m.msg.header.stamp) in set(after)]
        assert resumed and all(m.status == m.TRACKING for m in resumed)
        assert node.alive()
    finally:
        probe.close()
        node.stop()


def test_a_60hz_flood_with_slow_inference_keeps_latency_bounded_and_counts_drops(tmp_path, checkpoint, sequence):
    step = 0.25
    node, probe = run(156, tmp_path, {"checkpoint": checkpoint, "device": "cpu", "debug_min_step_time": step,
                                      "initial_box": [float(v) for v in sequence.boxes[0]]})
    try:
        wait_active(node, probe)
        sent, start = 0, time.monotonic()
        while time.monotonic() - start < 4.0:
            i = sent % len(sequence)
            probe.publish_pair(sequence.rgb[i], sequence.thermal[i])
            sent += 1
            time.sleep(max(0.0, start + sent / 60.0 - time.monotonic()))
        time.sleep(2 * step)
        outputs = list(probe.recording.target)
        latencies = [(r.receipt_ns - _ns(r.msg.header.stamp)) * 1e-9 for r in outputs]
        time.sleep(1.5)  # a diagnostics message (1 s period) issued after the flood: final counters
        values = probe.diagnostics_values()
        assert sent >= 150
        # about one output per step and no backlog; the lower bound is only liveness: a loaded 2-core CI
        # machine has delivered 6 of the 16 steps
        assert 4 <= len(outputs) <= 4.0 / step + 3, len(outputs)
        # Steady state (after the flood's first second, when the 2-core machine is still busy with the
        # start of the stream): typically the newest pair + one step, plus at most one pair in flight and
        # DDS/conversion time. A backlog (processing every pair at 4 Hz of a 60 Hz stream) would make the
        # latencies grow steadily towards the flood's length, 3-4 s, whatever the step. Single stalls of
        # 1-1.7 s do occur while the publisher, the node and the recorder share the 2 cores (not root-caused,
        # README): one output above the ceiling is tolerated, the flood's last output must be below it.
        # The step the node really ran at is the spacing of its outputs: on a loaded 2-core machine inference
        # itself can outlast the padded step (CI once measured a steady median latency of 0.59 s against a
        # 0.25 s pad), so the bound follows the measured step rather than the requested one.
        first = _ns(outputs[0].msg.header.stamp)
        steady = [lat for r, lat in zip(outputs, latencies) if _ns(r.msg.header.stamp) - first >= SEC]
        assert len(steady) >= 3, latencies
        spacing = [(b.receipt_ns - a.receipt_ns) * 1e-9 for a, b in zip(outputs, outputs[1:])]
        actual_step = max(step, median_high(spacing))
        assert actual_step < 1.0, spacing                             # still far faster than the flood's length
        bound = actual_step + 0.25
        assert median_high(steady) < bound, (latencies, spacing)
        ceiling = 4 * actual_step + 0.5
        assert sum(lat >= ceiling for lat in steady) <= 1 and steady[-1] < ceiling, (latencies, spacing)
        late = steady[len(steady) // 2:]
        assert median_high(late) < bound, (latencies, spacing)  # the end of the flood is no worse
        # every synchronised pair is either processed or counted as dropped (one may wait in the mailbox);
        # the three counters come from one diagnostics snapshot
        synchronised, processed = int(values["pairs_synchronised"]), int(values["pairs_processed"])
        dropped = int(values["pairs_dropped"])
        assert synchronised - processed - 1 <= dropped <= synchronised - processed, values
        assert dropped >= 0.6 * synchronised, values                   # the flood really was mostly dropped
        # best-effort images: a loaded 2-core machine loses part of a 60 Hz flood before the node (counted
        # in rgb/thermal rates, not here); what arrives must still be far more than the node can process
        assert synchronised >= 3 * processed, (sent, values)
    finally:
        probe.close()
        node.stop()


class _Exploit:
    """A pickle that would create a file if a loader executed it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_missing_or_malicious_checkpoints_leave_the_node_alive_and_unconfigured(tmp_path, checkpoint):
    import torch
    marker = tmp_path / "executed"
    malicious = tmp_path / "malicious.pth.tar"
    torch.save({"net": {}, "payload": _Exploit(marker)}, malicious, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    node, probe = run(157, tmp_path, {"checkpoint": str(tmp_path / "missing.pth.tar"), "device": "cpu"})
    try:
        assert node.wait_for_log("configure failed", STARTUP_S), node.log()
        assert "missing.pth.tar does not exist" in node.log()
        assert probe.lifecycle_state() == "unconfigured" and node.alive()

        assert probe.set_parameters({"checkpoint": str(malicious)})[0].successful
        assert not probe.change_state("configure")
        assert probe.lifecycle_state() == "unconfigured" and node.alive()
        assert "refusing checkpoint" in node.log() and not marker.exists()

        # fixing the parameter brings it up through the lifecycle services
        assert probe.set_parameters({"checkpoint": checkpoint})[0].successful
        assert probe.change_state("configure") and probe.lifecycle_state() == "inactive"
        assert probe.change_state("activate") and probe.lifecycle_state() == "active"
        assert not probe.set_parameters({"sync.slop": 0.05})[0].successful   # activation-time parameter
        assert probe.change_state("deactivate") and probe.change_state("cleanup")
        assert probe.lifecycle_state() == "unconfigured" and node.alive()

        # candidate elimination on a 4-block network: a block it does not have is refused by name; the
        # default placement is the paper's 1/4, 1/2, 3/4 of the depth
        assert probe.set_parameters({"candidate_elimination.mode": "on",
                                     "candidate_elimination.layers": [7]})[0].successful
        assert not probe.change_state("configure") and node.alive()
        assert "candidate elimination at layers [7]: invalid ModelConfig: ce_loc (7,) must be increasing block " \
               "indices in [0, 4)" in node.log()
        assert probe.set_parameters({"candidate_elimination.layers": []})[0].successful
        assert probe.change_state("configure") and probe.lifecycle_state() == "inactive"
        assert node.wait_for_log("candidate elimination at [1, 2, 3]", 10.0), node.log()
    finally:
        probe.close()
        node.stop()


def _ns(stamp) -> int:
    return int(stamp.sec) * SEC + int(stamp.nanosec)


def test_debug_image_shows_both_modalities_as_the_tracker_sees_them_with_the_input_header(tmp_path, checkpoint,
                                                                                         sequence):
    """16-bit thermal is shown as the tracker sees it (gain control), before and after initialisation."""
    node = NodeProcess(176, tmp_path / "node.log", {"checkpoint": checkpoint, "device": "cpu"}).start()
    try:
        probe = Probe(176, debug_image=True)
    except Exception:
        node.stop()
        raise
    try:
        wait_active(node, probe)
        raw = (sequence.thermal[..., 0].astype(np.uint16) * 40 + 3000)   # radiometric-like counts
        stamps = []
        for i in range(4):
            if i == 2:
                response = probe.initialize(sequence.boxes[1])
                assert response.success, response.message
            stamps.append(probe.publish_pair(sequence.rgb[i], raw[i], frame_id=f"cam_{i}"))
            assert probe.wait_for_target(stamps[-1], 30.0) is not None, node.log()
        assert probe.wait_until(lambda r: set(stamps) <= {_ns(d.msg.header.stamp) for d in r.debug_image}, 10.0), \
            node.log()
        h, w = sequence.rgb.shape[1:3]
        by_stamp = {_ns(r.msg.header.stamp): r.msg for r in probe.recording.debug_image}   # init re-publishes
        for i, stamp in enumerate(stamps):
            img = by_stamp[stamp]
            assert img.header.frame_id == f"cam_{i}"
            assert (img.encoding, img.height, img.width) == ("rgb8", h, 2 * w)
            pixels = np.frombuffer(bytes(img.data), np.uint8).reshape(h, img.step // 3, 3)[:, :2 * w]
            assert pixels[:, w:].std() > 10   # the thermal half carries the scene, not a blank
    finally:
        probe.close()
        node.stop()
