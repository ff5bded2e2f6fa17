"""The tracker computes exactly what the reference CKD tracker computes (INTERFACE.md §3-6)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ckd_ros.data.box_files import write_reference_boxes
from ckd_ros.tracking import CKDTracker, TrackerConfig, hann2d, sample_target

SMALL = dict(embed_dim=64, depth=4, num_heads=4, head_channels=32)


def _read(path: Path) -> np.ndarray:
    # the reference reads every image (thermal too) as 8-bit, 3 channels, RGB order
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _frames(reference_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    rgb = sorted((reference_dir / "seq" / "rgb").iterdir())
    tir = sorted((reference_dir / "seq" / "tir").iterdir())
    return [(_read(a), _read(b)) for a, b in zip(rgb, tir)]


def _boxes(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", comments="#")


def _small_net(reference_dir: Path, size_bias: bool = False):
    model = pytest.importorskip("ckd_ros.model")
    config = model.ModelConfig(**SMALL)
    path = reference_dir / "ckd_small.pth.tar"
    if hasattr(model, "load_checkpoint"):
        net = model.load_checkpoint(path, config=config, device="cpu")
    else:  # until the loader lands: the official layout, strict on the inference keys
        net = model.CKDNet(config)
        missing = net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["net"],
                                      strict=False).missing_keys
        assert missing == []
        net.eval()
    if size_bias:  # the reference's second run: conv5_size.bias = logit(0.25) (WEIGHTS.md)
        with torch.no_grad():
            net.box_head.conv5_size.bias.fill_(math.log(0.25 / 0.75))
    return net


def _run(tracker: CKDTracker, frames, init_box) -> np.ndarray:
    boxes = [tracker.initialize(frames[0][0], frames[0][1], init_box).box]
    boxes += [tracker.track(rgb, tir).box for rgb, tir in frames[1:]]
    return np.asarray(boxes)


@pytest.fixture(scope="module")
def frames(reference_dir: Path):
    return _frames(reference_dir)


@pytest.fixture(scope="module")
def runs(reference_dir: Path, frames) -> dict[str, tuple[np.ndarray, list[float]]]:
    """Boxes and scores of the two reference runs, each tracked once for the whole module."""
    out = {}
    for name, bias in (("main", False), ("sizebias", True)):
        tracker = CKDTracker(_small_net(reference_dir, size_bias=bias), TrackerConfig(), device="cpu")
        boxes = [tracker.initialize(frames[0][0], frames[0][1], [60.0, 80.0, 40.0, 30.0]).box]
        scores = []
        for rgb, tir in frames[1:]:
            result = tracker.track(rgb, tir)
            boxes.append(result.box)
            scores.append(result.score)
        out[name] = (np.asarray(boxes), scores)
    return out


@pytest.mark.parametrize("run", ["main", "sizebias"])
def test_search_and_template_crops_are_byte_identical_to_the_reference(reference_dir, frames, run):
    if run == "main":
        crops = np.load(reference_dir / "tracker_crops.npz")
        debug = json.loads((reference_dir / "tracker_debug.json").read_text())
    else:
        crops = np.load(reference_dir / "tracker_sizebias" / "tracker_crops_sizebias.npz")
        debug = json.loads((reference_dir / "tracker_sizebias" / "tracker_debug_sizebias.json").read_text())
    z_rgb, g = sample_target(frames[0][0], debug["init_bbox"], 2.0, 128)
    z_tir, _ = sample_target(frames[0][1], debug["init_bbox"], 2.0, 128)
    assert np.array_equal(z_rgb, crops["z_patch_rgb"]) and np.array_equal(z_tir, crops["z_patch_tir"])
    assert g.crop_size == debug["template"]["crop_sz"]
    for k, frame in enumerate(debug["frames"]):
        rgb, tir = frames[frame["frame"]]
        x_rgb, g = sample_target(rgb, frame["prev_state"], 4.0, 256)
        x_tir, _ = sample_target(tir, frame["prev_state"], 4.0, 256)
        assert np.array_equal(x_rgb, crops["x_patch_rgb"][k]), f"rgb crop of frame {frame['frame']}"
        assert np.array_equal(x_tir, crops["x_patch_tir"][k]), f"thermal crop of frame {frame['frame']}"
        assert (g.crop_size, g.resize_factor) == (frame["crop_sz"], frame["resize_factor"])


def test_hann_window_equals_the_reference_window(reference_dir):
    assert np.array_equal(hann2d(16).numpy(), np.load(reference_dir / "tracker_crops.npz")["hann"])


def test_python_round_half_to_even_decides_the_crop_origin():
    # x + w/2 - crop/2 = 10.5 -> 10 (half-to-even), not 11; the +1 pad then drops the last column
    image = np.full((40, 40, 3), 200, dtype=np.uint8)
    _, g = sample_target(image, [20.5, 20.5, 10.0, 10.0], 1.0, 10)
    assert (g.x1, g.y1, g.crop_size) == (20, 20, 10)
    # crop 15 at round(27.5) = 28 -> x2 = 43 > 40: pad 43 - 40 + 1 = 4, so image column 39 is dropped too
    patch, g = sample_target(image, [30.0, 30.0, 10.0, 10.0], 1.5, 15)
    assert (g.x1, g.crop_size) == (28, 15)
    assert np.all(patch[:, -4:] == 0) and np.all(patch[-4:, :] == 0) and np.all(patch[:11, :11] == 200)


def test_normalised_template_and_search_tensors_equal_the_reference(reference_dir, frames):
    crops = np.load(reference_dir / "tracker_crops.npz")
    tracker = CKDTracker(_small_net(reference_dir))
    tracker.initialize(frames[0][0], frames[0][1], [60.0, 80.0, 40.0, 30.0])
    assert np.array_equal(tracker._z[0:1].numpy(), crops["z_tensor_rgb"])
    assert np.array_equal(tracker._z[1:2].numpy(), crops["z_tensor_tir"])
    tracker.track(*frames[1])
    assert np.array_equal(tracker._x[0:1].numpy(), crops["x_tensor_rgb_frame1"])
    assert np.array_equal(tracker._x[1:2].numpy(), crops["x_tensor_tir_frame1"])


def test_tracker_reproduces_the_reference_boxes_with_the_small_checkpoint(reference_dir, runs):
    expected = _boxes(reference_dir / "tracker_boxes.txt")
    assert runs["main"][0].shape == expected.shape
    assert np.abs(runs["main"][0] - expected).max() <= 1e-3


def test_tracker_reproduces_the_border_padding_run_with_the_size_bias(reference_dir, runs):
    expected = _boxes(reference_dir / "tracker_sizebias" / "tracker_boxes_sizebias.txt")
    assert runs["sizebias"][0].shape == expected.shape
    assert np.abs(runs["sizebias"][0] - expected).max() <= 1e-3


@pytest.mark.parametrize("run, path", [("main", "tracker_response_max.txt"),
                                       ("sizebias", "tracker_sizebias/tracker_response_max_sizebias.txt")])
def test_scores_are_the_peaks_of_the_windowed_response(reference_dir, runs, run, path):
    expected = np.loadtxt(reference_dir / path, delimiter=",", comments="#")
    assert np.allclose(runs[run][1], expected[:, 1], atol=1e-8)


@pytest.mark.parametrize("run, path", [("main", "tracker_boxes_written.txt"),
                                       ("sizebias", "tracker_sizebias/tracker_boxes_sizebias_written.txt")])
def test_result_file_in_reference_format_equals_the_reference_writer(reference_dir, runs, tmp_path, run, path):
    out = write_reference_boxes(tmp_path / "seq.txt", runs[run][0])
    assert out.read_text() == (reference_dir / path).read_text()


def test_reinitialising_restarts_the_reference_run_exactly(reference_dir, frames):
    expected = _boxes(reference_dir / "tracker_boxes.txt")
    tracker = CKDTracker(_small_net(reference_dir))
    tracker.initialize(frames[3][0], frames[3][1], [100.0, 90.0, 30.0, 30.0])
    tracker.track(*frames[4])
    assert np.abs(_run(tracker, frames, expected[0]) - expected).max() <= 1e-3


def test_centre_token_mask_is_passed_when_the_network_eliminates_candidates(reference_dir, frames):
    model = pytest.importorskip("ckd_ros.model")
    net = _small_net(reference_dir)
    seen = []
    mce_config = model.ModelConfig(**SMALL, ce_loc=(1, 2, 3), ce_keep_ratio=(0.7, 0.7, 0.7))
    mce = model.CKDNet(mce_config)
    mce.load_state_dict(net.state_dict())
    mce.eval()
    original = mce.forward

    def spy(*args, ce_template_mask=None):
        seen.append(ce_template_mask)
        return original(*args, ce_template_mask=ce_template_mask)

    mce.forward = spy
    tracker = CKDTracker(mce)
    tracker.initialize(frames[0][0], frames[0][1], [60.0, 80.0, 40.0, 30.0])
    tracker.track(*frames[1])
    assert seen[0] is not None and seen[0].dtype == torch.bool and seen[0].shape == (1, 64)
    assert seen[0][0].nonzero().flatten().tolist() == [27]
    seen.clear()
    plain = CKDTracker(net)
    plain.net.forward = spy
    plain.initialize(frames[0][0], frames[0][1], [60.0, 80.0, 40.0, 30.0])
    plain.track(*frames[1])
    assert seen == [None]


def _smooth_frame(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("box", [[900, 500, 100, 80], [0, 0, 1900, 1070], [1500, 800, 419, 279],
                                 [-100, -50, 600, 500]])
def test_crops_above_the_exact_limit_are_resampled_directly_within_one_grey_level(box):
    frame = _smooth_frame(1080, 1920)
    exact, g = sample_target(frame, box, 4.0, 256)
    direct, g2 = sample_target(frame, box, 4.0, 256, exact_limit=1)
    assert g == g2
    diff = np.abs(exact.astype(int) - direct.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.2
    # below the limit nothing changes: the reference's bytes
    assert np.array_equal(sample_target(frame, box, 4.0, 256, exact_limit=g.crop_size)[0], exact)


def test_the_direct_resample_keeps_the_reference_border_quirk_and_refuses_crops_off_the_image():
    image = np.full((40, 40, 3), 200, dtype=np.uint8)
    patch, _ = sample_target(image, [30.0, 30.0, 10.0, 10.0], 1.5, 15, exact_limit=1)
    assert np.all(patch[:, -4:] == 0) and np.all(patch[-4:, :] == 0) and np.all(patch[:11, :11] == 200)
    with pytest.raises(ValueError, match="does not overlap"):
        sample_target(image, [500.0, 500.0, 10.0, 10.0], 4.0, 16, exact_limit=1)


@pytest.mark.parametrize("box", [[500.0, 5.0, 10.0, 10.0], [-30.0, 5.0, 10.0, 10.0], [5.0, -30.0, 10.0, 10.0]])
@pytest.mark.parametrize("limit", [None, 1])
def test_crops_wholly_off_the_image_are_refused_on_both_paths(box, limit):
    # left of or above the image the crop's end is negative: sliced as is, it would wrap to the far side
    image = np.full((40, 40, 3), 200, dtype=np.uint8)
    with pytest.raises(ValueError, match="does not overlap"):
        sample_target(image, box, 2.0, 16, exact_limit=limit)


def test_the_tracker_bounds_crop_cost_by_default_and_validates_the_limit():
    assert TrackerConfig().exact_crop_limit == 2048  # above every crop of the parity data
    with pytest.raises(ValueError, match="exact_crop_limit"):
        TrackerConfig(exact_crop_limit=0).validate()
