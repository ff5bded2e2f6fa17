"""Target status from a calibrated confidence: features, head, calibration files, never a changed box."""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from ckd_ros.data import SyntheticScene, generate_sequence, open_sequence
from ckd_ros.evaluation.status_fit import iou_xywh, replay
from ckd_ros.model import default_checkpoint_path
from ckd_ros.tracking import StatusConfig, StatusFilter, TrackerSpec, TrackStatus, build_tracker
from ckd_ros.tracking.calibration import (StatusCalibration, checkpoint_calibration_path, load_calibration,
                                          save_calibration)
from ckd_ros.tracking.confidence import FEATURES, ConfidenceHead


def _shipped():
    return load_calibration(checkpoint_calibration_path(default_checkpoint_path()))


def _run(tracker, frames, box0):
    tracker.initialize(*frames[0], box0)
    return [tracker.track(rgb, tir) for rgb, tir in frames[1:]]


def test_the_embedded_model_ships_its_calibration_and_the_factory_loads_it_by_default():
    shipped = _shipped()
    assert shipped.checkpoint == default_checkpoint_path().name and shipped.status.head is not None
    tracker = build_tracker(TrackerSpec())
    assert tracker.config.status == shipped.status
    assert build_tracker(TrackerSpec(calibration="none")).config.status == StatusConfig()


def test_the_status_never_changes_a_box_and_the_confidence_is_in_0_1():
    seq = generate_sequence(100004, "occlusion")
    frames = list(zip(seq.rgb, seq.thermal))
    calibrated = _run(build_tracker(TrackerSpec()), frames, seq.boxes[0])
    raw = _run(build_tracker(TrackerSpec(calibration="none")), frames, seq.boxes[0])
    assert [r.box for r in calibrated] == [r.box for r in raw]
    assert [r.score for r in calibrated] == [r.score for r in raw]
    assert all(0.0 <= r.confidence <= 1.0 for r in calibrated)
    assert [r.confidence for r in raw] == [r.score for r in raw]     # no head: the peak decides, as before


def _swapped_frames(seed: int, swap_at: int, distractor: int = 0):
    """A normal scene whose target takes the look of one of its colour twins from frame ``swap_at`` on (same
    place and motion: the box may stay where it was, but on the wrong object); that twin itself is removed."""
    scene = SyntheticScene(seed, "normal")
    impostor = copy.copy(scene)
    impostor.target = copy.copy(scene.target)
    twin = scene.distractors[distractor]
    for name in ("texture", "heat_tex", "heat", "rounded"):
        setattr(impostor.target, name, getattr(twin, name))
    impostor.distractors = [d for i, d in enumerate(scene.distractors) if i != distractor]
    frames = [scene.render(i) if i < swap_at else impostor.render(i) for i in range(len(scene))]
    return frames, scene.boxes


@pytest.mark.parametrize("seed", [100000, 100001])
def test_a_target_swapped_for_a_colour_twin_turns_lost_within_the_calibrated_patience(seed):
    status = _shipped().status
    swap_at = 40
    frames, boxes = _swapped_frames(seed, swap_at)
    results = _run(build_tracker(TrackerSpec()), frames, boxes[0])
    statuses = [TrackStatus.TRACKING] + [r.status for r in results]     # index = frame
    assert all(s == TrackStatus.TRACKING for s in statuses[1:swap_at]), "a false alarm before the swap"
    # the swapped frame itself is where the evidence appears; lost_patience frames of it make LOST
    deadline = swap_at + status.lost_patience
    assert TrackStatus.LOST in statuses[swap_at:deadline + 1], statuses[swap_at:deadline + 5]


def test_bus1_with_the_embedded_model_is_lost_on_every_annotated_frame_it_is_off_the_bus(shared_data_dir):
    seq = open_sequence(shared_data_dir / "vtuav_bus1")
    frames = [(f.rgb, f.thermal) for f in seq]
    results = _run(build_tracker(TrackerSpec()), frames, seq.init_box)
    annotated = [i for i in np.flatnonzero(~np.isnan(seq.ground_truth[:, 0])) if i > 0]
    boxes = np.array([results[i - 1].box for i in annotated])
    iou = iou_xywh(boxes, seq.ground_truth[annotated])
    off = [i for i, v in zip(annotated, iou) if v == 0.0]
    assert len(off) >= 5, "the embedded model was expected to lose the bus (it did when this was written)"
    assert [results[i - 1].status for i in off] == [TrackStatus.LOST] * len(off)


def test_replay_follows_the_status_filter_rule_exactly():
    rng = np.random.default_rng(3)
    values = rng.random(300)
    values[rng.integers(0, 300, 10)] = np.nan
    settings = [(0.3, 0.5, 1, 1), (0.4, 0.6, 3, 2), (0.5, 0.5, 2, 5)]
    tracking = replay(values, *(np.array(c) for c in zip(*settings)))
    for row, (lo, re, lp, rp) in zip(tracking, settings):
        f = StatusFilter(StatusConfig(lo, re, lp, rp))
        f.start()
        assert row.tolist() == [f.update(v) == TrackStatus.TRACKING for v in values]


def _head() -> ConfidenceHead:
    n = len(FEATURES)
    return ConfidenceHead(FEATURES, (0.0,) * n, (1.0,) * n, tuple(np.linspace(-1, 1, n)), 0.5)


def test_a_calibration_file_round_trips_and_bad_files_are_refused_by_name(tmp_path):
    cal = StatusCalibration(StatusConfig(0.3, 0.4, 2, 3, _head()), "x.pth.tar", "", 0.03)
    path = save_calibration(tmp_path / "x.status.yaml", cal, "ckd calibrate --test")
    back = load_calibration(path)
    assert back.status == cal.status and back.target_false_tracking == 0.03
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: something_else\n")
    with pytest.raises(ValueError, match="bad.yaml.*not a ckd_status_calibration"):
        load_calibration(bad)
    text = path.read_text().replace("lost_patience: 2", "lost_patience: 0")
    bad.write_text(text)
    with pytest.raises(ValueError, match="patience"):
        load_calibration(bad)
    with pytest.raises(FileNotFoundError, match="ckd calibrate"):
        build_tracker(TrackerSpec(calibration=tmp_path / "missing.status.yaml"))


def test_a_calibration_fitted_for_another_checkpoint_is_refused(tmp_path):
    cal = StatusCalibration(StatusConfig(0.3, 0.4, 2, 3, _head()), "other.pth.tar", "0" * 64, 0.03)
    path = save_calibration(tmp_path / "other.status.yaml", cal)
    with pytest.raises(ValueError, match="fitted for other.pth.tar"):
        build_tracker(TrackerSpec(calibration=path))


def test_ckd_track_loads_a_calibration_and_writes_its_confidence(tmp_path, capsys):
    from ckd_ros.data import write_sequence
    from ckd_ros.tracking.cli import main
    seq = generate_sequence(100002, "normal", num_frames=12)
    folder = write_sequence(tmp_path / "seq", seq, ext="png")
    # thresholds no confidence can pass: every frame after the first must be LOST (patience 1)
    strict = dataclasses.replace(_shipped(), status=dataclasses.replace(_shipped().status, lost_threshold=1.0,
                                                                         recover_threshold=1.0, lost_patience=1))
    cal = save_calibration(tmp_path / "strict.status.yaml", strict)
    assert main([str(folder), "--calibration", str(cal), "--output", str(tmp_path / "out"), "--overlay", "none",
                 "--quiet"]) == 0
    rows = [line.split(",") for line in (tmp_path / "out" / "seq_scores.txt").read_text().splitlines()[1:]]
    assert [r[3] for r in rows] == ["tracking"] + ["lost"] * 11
    assert all(0.0 <= float(r[2]) <= 1.0 for r in rows)
    assert "lost in 11 frames" in capsys.readouterr().out
    assert main([str(folder), "--calibration", str(tmp_path / "nope.yaml"), "--output", str(tmp_path / "o2"),
                 "--overlay", "none", "--quiet"]) == 2
    assert "nope.yaml does not exist" in capsys.readouterr().err


def test_appearance_evidence_sees_a_change_of_colour_or_heat_in_the_box_and_calls_a_flat_patch_neutral():
    from ckd_ros.tracking.confidence import Appearance
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    tir = rng.integers(0, 255, (60, 80), dtype=np.uint8)
    box = (10.0, 12.0, 30.0, 24.0)
    ref = Appearance.of(rgb, tir, box)
    assert ref.compare(Appearance.of(rgb, tir, box)) == pytest.approx((1.0, 1.0, 0.0, 0.0))
    recoloured, hotter = rgb.copy(), tir.copy()
    recoloured[..., 0] //= 4
    hotter[:] = np.minimum(hotter.astype(np.int32) + 80, 255).astype(np.uint8)
    rgb_ncc, _, colour, _ = ref.compare(Appearance.of(recoloured, tir, box))
    _, _, _, heat = ref.compare(Appearance.of(rgb, hotter, box))
    assert colour > 0.1 and heat > 0.2
    flat = np.zeros_like(rgb)
    assert ref.compare(Appearance.of(flat, tir, box))[0] == 0.0
    # boxes reaching past the image are clipped, never an empty patch
    assert Appearance.of(rgb, tir, (75.0, 55.0, 40.0, 40.0)).rgb.shape[:2] == ref.rgb.shape[:2]


def test_a_record_of_tracked_sequences_reproduces_the_report_without_tracking_again(tmp_path, capsys):
    import json

    from ckd_ros.evaluation.calibrate_cli import main
    common = ["--report", "--seeds", "100000:100002", "--conditions", "normal,crossover", "--frames", "25",
              "--quiet", "--threads", "1"]
    record = tmp_path / "rec.npz"
    assert main(common + ["--record", str(record), "--json", str(tmp_path / "a.json")]) == 0
    # the record says which sequences it holds: other seeds on the command line do not change what is scored
    assert main(["--report", "--seeds", "5:6", "--from-record", str(record), "--quiet",
                 "--json", str(tmp_path / "b.json")]) == 0
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert a["rows"] == b["rows"] and b["seeds"] == "100000..100001 (2)"
    capsys.readouterr()
    other = tmp_path / "other.pth.tar"
    other.write_bytes(default_checkpoint_path().read_bytes() + b"\0")
    assert main(["--checkpoint", str(other), "--from-record", str(record), "--output", str(tmp_path / "x.yaml"),
                 "--quiet"]) == 2
    assert "recorded with another checkpoint" in capsys.readouterr().err
    (tmp_path / "junk.npz").write_bytes(b"not a record")
    assert main(["--report", "--from-record", str(tmp_path / "junk.npz"), "--quiet"]) == 2
    assert "cannot read a status record" in capsys.readouterr().err


def test_the_confidence_does_not_decay_with_the_age_of_a_track_it_follows_well():
    # A robot tracks for hours; calibration sequences are 100 frames. A scene played back and forth for 1000
    # frames (the box never leaves the target) must stay TRACKING as much at the end as at the start. The
    # calibration shipped before this test reported LOST on every frame after the 200th.
    seq = generate_sequence(3, "normal", num_frames=30, size=(320, 256))
    order = (list(range(30)) + list(range(28, 0, -1))) * 18
    tracker = build_tracker(TrackerSpec())
    tracker.initialize(seq.rgb[0], seq.thermal[0], seq.boxes[0])
    results = [tracker.track(seq.rgb[i], seq.thermal[i]) for i in order[1:1001]]
    iou = iou_xywh(np.array([r.box for r in results]), np.array([seq.boxes[i] for i in order[1:1001]]))
    assert iou.min() >= 0.3, "the box left the target: the premise of this test no longer holds"
    tracking = np.array([r.status == TrackStatus.TRACKING for r in results])
    windows = tracking.reshape(5, 200).mean(axis=1)
    assert windows.min() >= 0.75, windows
    assert windows[-1] >= windows[0] - 0.1, windows
