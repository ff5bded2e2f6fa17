"""The demo player's folder source: any layout ckd_ros.data reads, thermal sent as a thermal camera would."""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest

from ckd_ros.demo.frames import FolderSequence, camera_thermal
from ckd_ros.ros.images import array_to_image, thermal_to_array


def test_grey_thermal_files_are_sent_as_one_channel_at_their_own_depth():
    grey8 = np.repeat(np.arange(12, dtype=np.uint8).reshape(3, 4, 1), 3, axis=2)
    assert camera_thermal(grey8).shape == (3, 4) and camera_thermal(grey8).dtype == np.uint8
    deep = (grey8.astype(np.uint16) * 1000)
    assert camera_thermal(deep).dtype == np.uint16 and camera_thermal(deep).max() == 11000
    palette = grey8.copy()
    palette[..., 0] = 255                       # a false-colour thermal image stays RGB
    assert camera_thermal(palette).shape == (3, 4, 3)


def _write(folder: Path, rgb_dir: str, thermal_dir: str, thermal: list[np.ndarray], gt_name: str, gt: str) -> None:
    (folder / rgb_dir).mkdir(parents=True)
    (folder / thermal_dir).mkdir()
    for i, t in enumerate(thermal):
        rgb = np.zeros((*t.shape, 3), np.uint8)
        rgb[..., 2] = 200 + i                   # red in RGB order, written as BGR
        assert cv2.imwrite(str(folder / rgb_dir / f"{i:06d}.png"), rgb[..., ::-1])
        assert cv2.imwrite(str(folder / thermal_dir / f"{i:06d}.png"), t)
    (folder / gt_name).write_text(gt)


def test_a_plain_folder_with_16_bit_thermal_plays_raw_counts_that_survive_a_mono16_message(tmp_path):
    counts = [np.full((24, 32), 20000 + 100 * i, np.uint16) for i in range(2)]
    _write(tmp_path / "seq", "rgb", "thermal", counts, "groundtruth.txt", "1,2,10,12\n2,3,10,12\n")
    seq = FolderSequence(tmp_path / "seq")
    assert len(seq) == 2 and seq.init_box.tolist() == [1, 2, 10, 12]
    rgb, thermal = seq.frame(1)
    assert rgb.shape == (24, 32, 3) and rgb[0, 0].tolist() == [0, 0, 201]
    assert thermal.dtype == np.uint16 and thermal.shape == (24, 32) and int(thermal[0, 0]) == 20100
    assert np.array_equal(thermal_to_array(array_to_image(thermal, "mono16")), thermal)


def test_a_vtuav_folder_plays_with_its_sparse_ground_truth_and_first_box(tmp_path):
    grey = [np.full((24, 32), 50 + i, np.uint8) for i in range(12)]
    _write(tmp_path / "bus", "rgb", "ir_gray", grey, "rgb.txt", "3 4 8 9\n5 6 8 9\n")
    seq = FolderSequence(tmp_path / "bus")
    assert len(seq) == 12 and seq.init_box.tolist() == [3, 4, 8, 9]
    assert np.isfinite(seq.boxes[[0, 10]]).all() and np.isnan(seq.boxes[1:10]).all()
    _, thermal = seq.frame(11)
    assert thermal.shape == (24, 32) and int(thermal[0, 0]) == 61


def test_a_folder_in_no_known_layout_is_refused_with_what_was_found(tmp_path):
    (tmp_path / "seq" / "color").mkdir(parents=True)
    with pytest.raises(ValueError, match="not a known RGB-thermal sequence layout.*color"):
        FolderSequence(tmp_path / "seq")


def test_the_synthetic_detector_reports_noisy_ground_truth_with_misses_distractors_and_false_alarms():
    from ckd_ros.demo.detector import SyntheticDetector, SyntheticDetectorConfig

    boxes = np.array([[100.0 + i, 80.0, 40.0, 60.0] for i in range(400)])
    config = SyntheticDetectorConfig()
    detector = SyntheticDetector(boxes, (256, 320), config, seed=3)
    frames = [detector.detect(i) for i in range(len(boxes))]
    assert frames[7] == SyntheticDetector(boxes, (256, 320), config, seed=3).detect(7)       # reproducible
    hits = [[d for d in f if d[1] == "target" and d[2] >= 0.5] for f in frames]
    assert all(len(h) <= 1 for h in hits)
    miss_share = sum(not h for h in hits) / len(frames)
    assert abs(miss_share - config.miss_rate) < 0.06, miss_share
    errors = np.array([np.array(h[0][0]) - boxes[i] for i, h in enumerate(hits) if h])
    assert 0.5 < np.abs(errors[:, 0]).mean() < 4.0              # jittered by ~5 % of a 40 px box, not exact
    distractors = sum(any(d[1] == "distractor" for d in f) for f in frames) / len(frames)
    false_alarms = sum(any(d[1] == "target" and d[2] < 0.5 for d in f) for f in frames) / len(frames)
    assert abs(distractors - config.distractor_rate) < 0.08 and abs(false_alarms - config.false_alarm_rate) < 0.08
    assert detector.detect(10_000) == [] or all(d[1] != "target" or d[2] < 0.5 for d in detector.detect(10_000))


def test_node_parameters_on_the_demo_command_line_are_typed_as_ros2_run_types_them():
    from ckd_ros.demo.__main__ import _node_parameter

    assert _node_parameter("qos.depth:=12") == ("qos.depth", 12)
    assert _node_parameter("status.lost_threshold:=0.4") == ("status.lost_threshold", 0.4)
    assert _node_parameter("qos.reliable:=true") == ("qos.reliable", True)
    assert _node_parameter("initial_box:=[1, 2, 30, 40]") == ("initial_box", [1, 2, 30, 40])
    assert _node_parameter("backend:=onnxruntime") == ("backend", "onnxruntime")
    for bad in ("qos.depth=12", ":=3", "initial_box:=[1, 2"):
        with pytest.raises(argparse.ArgumentTypeError):
            _node_parameter(bad)
