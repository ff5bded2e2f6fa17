"""`ckd track` end to end: real checkpoint, real images, result file, times, scores and overlay."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ckd_ros.tracking.cli import main

REPO = Path(__file__).resolve().parents[1]


def _small(reference_dir: Path) -> list[str]:
    return ["--checkpoint", str(reference_dir / "ckd_small.pth.tar"), "--num-heads", "4", "--quiet"]


def _overlay_ok(path: Path, frames: int) -> None:
    if path.suffix == ".mp4":
        cap = cv2.VideoCapture(str(path))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, image = cap.read()
        cap.release()
        assert ok and count == frames and image.shape[1] > image.shape[0]   # RGB | thermal side by side
    else:
        assert len(list(path.glob("*.png"))) == frames


def test_ckd_track_on_the_reference_sequence_writes_the_reference_result_file(reference_dir, tmp_path):
    assert main([str(reference_dir / "seq"), *_small(reference_dir), "--output", str(tmp_path)]) == 0
    assert (tmp_path / "seq.txt").read_text() == (reference_dir / "tracker_boxes_written.txt").read_text()
    times = np.loadtxt(tmp_path / "seq_time.txt")
    assert times.shape == (12,) and np.all(times > 0)
    scores = (tmp_path / "seq_scores.txt").read_text().splitlines()
    assert len(scores) == 13 and scores[2].startswith("1,0.4930")
    _overlay_ok(tmp_path / "seq_overlay.mp4", 12)


def test_ckd_track_runs_as_an_installed_command_on_a_generated_synthetic_sequence(reference_dir, tmp_path):
    synthetic = pytest.importorskip("ckd_ros.data.synthetic", reason="synthetic generator not available")
    seq = synthetic.generate_sequence(3, "occlusion", num_frames=15, size=(320, 256))
    synthetic.write_sequence(tmp_path / "synth", seq, layout="lasher")
    ckd = Path(sys.executable).parent / "ckd"
    command = [str(ckd)] if ckd.exists() else [sys.executable, "-m", "ckd_ros.cli"]
    proc = subprocess.run([*command, "track", str(tmp_path / "synth"), *_small(reference_dir),
                           "--output", str(tmp_path / "out"), "--overlay", "png", "--result-format", "float"],
                          capture_output=True, text=True, timeout=300, cwd=REPO, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    boxes = np.loadtxt(tmp_path / "out" / "synth.txt")
    assert boxes.shape == (15, 4) and np.allclose(boxes[0], seq.boxes[0], atol=1e-4)
    assert np.loadtxt(tmp_path / "out" / "synth_time.txt").shape == (15,)
    _overlay_ok(tmp_path / "out" / "synth_overlay", 15)
    assert "15 frames" in proc.stdout


def test_ckd_track_reads_a_pair_of_video_files_with_an_init_box_from_the_command_line(reference_dir, tmp_path):
    synthetic = pytest.importorskip("ckd_ros.data.synthetic", reason="synthetic generator not available")
    seq = synthetic.generate_sequence(5, "normal", num_frames=8, size=(320, 256))
    paths = [tmp_path / "rgb.avi", tmp_path / "thermal.avi"]
    writers = [cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 256)) for p in paths]
    if not all(w.isOpened() for w in writers):
        pytest.skip("this OpenCV build has no MJPG writer")
    for rgb, tir, _ in seq.frames():
        writers[0].write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        writers[1].write(cv2.cvtColor(tir, cv2.COLOR_RGB2BGR))
    for w in writers:
        w.release()
    box = ",".join(f"{v:.2f}" for v in seq.boxes[0])
    assert main(["--rgb-video", str(paths[0]), "--thermal-video", str(paths[1]), "--init-box", box,
                 *_small(reference_dir), "--output", str(tmp_path / "out"), "--overlay", "none"]) == 0
    boxes = np.loadtxt(tmp_path / "out" / "rgb.txt")
    assert boxes.shape == (8, 4) and boxes[0].tolist() == [int(v) for v in seq.boxes[0]]


@pytest.mark.slow
def test_ckd_track_on_the_real_vtuav_bus_sequence(shared_data_dir, reference_dir, tmp_path):
    folder = shared_data_dir / "vtuav_bus1"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    assert main([str(folder), *_small(reference_dir), "--output", str(tmp_path)]) == 0
    boxes = np.loadtxt(tmp_path / "vtuav_bus1.txt")
    assert boxes.shape == (101, 4) and boxes[0].tolist() == [585, 94, 66, 83]
    assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 0] + boxes[:, 2] <= 1920)
    assert np.loadtxt(tmp_path / "vtuav_bus1_time.txt").shape == (101,)
    _overlay_ok(tmp_path / "vtuav_bus1_overlay.mp4", 101)


def test_ckd_track_explains_bad_input_and_exits_with_status_2(tmp_path, capsys, reference_dir):
    (tmp_path / "photos").mkdir()
    assert main([str(tmp_path / "photos"), *_small(reference_dir), "--output", str(tmp_path)]) == 2
    assert "not a known RGB-thermal sequence layout" in capsys.readouterr().err
    assert main(["--rgb-video", "a.mp4", *_small(reference_dir)]) == 2
    assert "go together" in capsys.readouterr().err
    assert main([str(reference_dir / "seq"), "--gain", "fixed", *_small(reference_dir)]) == 2
    assert "--gain-window" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(reference_dir / "seq"), "--init-box", "1,2,3"])
